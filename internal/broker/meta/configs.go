package meta

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
)

// Topic config names the bundled broker understands, as Apache Kafka spells them.
const (
	ConfigMinISR          = "min.insync.replicas"
	ConfigUncleanElection = "unclean.leader.election.enable"
	ConfigSegmentBytes    = "segment.bytes"
	ConfigIndexInterval   = "index.interval.bytes"
	ConfigRetentionMs     = "retention.ms"
	ConfigRetentionBytes  = "retention.bytes"
	ConfigMaxMessageBytes = "max.message.bytes"
	ConfigCleanupPolicy   = "cleanup.policy"
	ConfigCompressionType = "compression.type"
	ConfigTimestampType   = "message.timestamp.type"
	ConfigFlushMessages   = "flush.messages"
)

// configSpec describes one topic config: its Kafka default and how a value is checked.
type configSpec struct {
	def   string
	check func(string) error
}

func intAtLeast(min int64) func(string) error {
	return func(v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("not an integer: %q", v)
		}
		if n < min {
			return fmt.Errorf("%d is below the minimum %d", n, min)
		}
		return nil
	}
}

func oneOf(allowed ...string) func(string) error {
	return func(v string) error {
		if !slices.Contains(allowed, v) {
			return fmt.Errorf("%q is not one of %v", v, allowed)
		}
		return nil
	}
}

var topicConfigs = map[string]configSpec{
	ConfigMinISR:          {"1", intAtLeast(1)},
	ConfigUncleanElection: {"false", oneOf("true", "false")},
	ConfigSegmentBytes:    {"1073741824", intAtLeast(14)},
	ConfigIndexInterval:   {"4096", intAtLeast(0)},
	ConfigRetentionMs:     {"604800000", intAtLeast(-1)},
	ConfigRetentionBytes:  {"-1", intAtLeast(-1)},
	ConfigMaxMessageBytes: {"1048588", intAtLeast(0)},
	// Compaction is not implemented: only delete is accepted, and the error says so.
	ConfigCleanupPolicy:   {"delete", oneOf("delete")},
	ConfigCompressionType: {"producer", oneOf("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd")},
	ConfigTimestampType:   {"CreateTime", oneOf("CreateTime")},
	// flush.messages=N fsyncs the log once N messages were appended since the last fsync; the
	// default (Long.MAX_VALUE, as Kafka) never does: durability comes from replication.
	ConfigFlushMessages: {"9223372036854775807", intAtLeast(1)},
}

// TopicConfigNames returns the topic config names the broker accepts, sorted.
func TopicConfigNames() []string { return slices.Sorted(maps.Keys(topicConfigs)) }

// ValidateTopicConfig checks one topic config; the error says why a value is refused.
func ValidateTopicConfig(name, value string) error {
	spec, ok := topicConfigs[name]
	if !ok {
		return fmt.Errorf("unknown topic config %q", name)
	}
	if err := spec.check(value); err != nil {
		if name == ConfigCleanupPolicy {
			return fmt.Errorf("%s=%s: only delete is supported (compaction is not implemented): %w", name, value, err)
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// Defaults are the broker-wide values that topic configs fall back to.
type Defaults map[string]string

// DefaultTopicConfig returns Kafka's default for a topic config, overridden by d.
func (d Defaults) DefaultTopicConfig(name string) (string, bool) {
	if v, ok := d[name]; ok {
		return v, true
	}
	spec, ok := topicConfigs[name]
	return spec.def, ok
}

// offsetsTopicConfigs are configs the internal topics (offsets and transaction state) always
// have, whatever they were created with. Kafka compacts them; this broker does not compact, so
// it keeps them whole rather than let retention delete the last record of a group or
// transactional id that has not written since.
var offsetsTopicConfigs = map[string]string{ConfigRetentionMs: "-1", ConfigRetentionBytes: "-1"}

// TopicConfig resolves a topic config: the topic's own value, else the broker default, else
// Kafka's. explicit reports whether the topic set it (the offsets topic's fixed configs count as
// set).
func (d Defaults) TopicConfig(t *Topic, name string) (value string, explicit bool) {
	if t != nil {
		if v, ok := offsetsTopicConfigs[name]; ok && IsInternal(t.Name) {
			return v, true
		}
		if v, ok := t.Configs[name]; ok {
			return v, true
		}
	}
	v, _ := d.DefaultTopicConfig(name)
	return v, false
}

// Int resolves a numeric topic config; a malformed stored value falls back to the default.
func (d Defaults) Int(t *Topic, name string) int64 {
	v, _ := d.TopicConfig(t, name)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		def, _ := d.DefaultTopicConfig(name)
		n, _ = strconv.ParseInt(def, 10, 64)
	}
	return n
}

// Bool resolves a boolean topic config.
func (d Defaults) Bool(t *Topic, name string) bool {
	v, _ := d.TopicConfig(t, name)
	return v == "true"
}
