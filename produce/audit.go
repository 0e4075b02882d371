package produce

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The cluster side of the no-loss checklist.
const (
	// MinReplicationFactor is the least replication factor Audit accepts:
	// with 3 replicas and min.insync.replicas=2, one broker can fail
	// without losing acknowledged records or stopping writes.
	MinReplicationFactor = 3

	// MinInsyncReplicas is the least min.insync.replicas Audit accepts:
	// an acks=all write is then on at least two brokers when acknowledged.
	MinInsyncReplicas = 2
)

// NoLossTopicConfigs returns the topic configs of a no-loss topic, for
// CreateTopics beside a replication factor of at least
// [MinReplicationFactor]: min.insync.replicas = [MinInsyncReplicas] and
// unclean.leader.election.enable = false. The map is new on every call.
func NoLossTopicConfigs() map[string]*string {
	minISR, unclean := strconv.Itoa(MinInsyncReplicas), "false"
	return map[string]*string{"min.insync.replicas": &minISR, "unclean.leader.election.enable": &unclean}
}

// The rules Audit checks, as they appear in [Check.Rule].
const (
	RuleTopicExists              = "topic exists"
	RuleReplicationFactor        = "replication.factor >= 3"
	RuleMinInsyncReplicas        = "min.insync.replicas >= 2"
	RuleMinInsyncBelowRF         = "min.insync.replicas < replication.factor"
	RuleUncleanElection          = "unclean.leader.election.enable = false"
	RuleDefaultReplicationFactor = "default.replication.factor >= 3"
	RuleProducerAcks             = "producer acks = all"
)

// ErrAuditFailed is matched by [Report.Err] when a check failed.
var ErrAuditFailed = errors.New("produce: audit failed")

// Check is one rule applied to one resource.
type Check struct {
	Rule     string `json:"rule"`          // Rule is one of the Rule constants.
	Resource string `json:"resource"`      // Resource is "broker <id>", "topic <name>" or "producer".
	Value    string `json:"value"`         // Value is what was found, with where it came from.
	Pass     bool   `json:"pass"`          // Pass is whether the rule holds.
	Fix      string `json:"fix,omitempty"` // Fix says how to make a failing rule hold.
}

// Report is the outcome of [Audit]: one Check per rule and resource.
type Report struct {
	Checks []Check `json:"checks"`
}

// Passed reports whether every check passed.
func (r Report) Passed() bool { return len(r.Failures()) == 0 }

// Failures returns the checks that failed.
func (r Report) Failures() []Check {
	var out []Check
	for _, c := range r.Checks {
		if !c.Pass {
			out = append(out, c)
		}
	}
	return out
}

// Err returns nil if every check passed, otherwise an error matching
// [ErrAuditFailed] that names each failed check.
func (r Report) Err() error {
	failed := r.Failures()
	if len(failed) == 0 {
		return nil
	}
	names := make([]string, len(failed))
	for i, c := range failed {
		names[i] = c.Resource + ": " + c.Rule + " (" + c.Value + ")"
	}
	return fmt.Errorf("%w: %d of %d checks failed: %s", ErrAuditFailed, len(failed), len(r.Checks), strings.Join(names, "; "))
}

// MarshalJSON encodes the report as {"passed": bool, "checks": [...]}.
func (r Report) MarshalJSON() ([]byte, error) {
	checks := r.Checks
	if checks == nil {
		checks = []Check{}
	}
	return json.Marshal(struct {
		Passed bool    `json:"passed"`
		Checks []Check `json:"checks"`
	}{r.Passed(), checks})
}

// WriteText writes the report for people: one line per check, then the fix
// for every failed check.
func (r Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range r.Checks {
		result := "pass"
		if !c.Pass {
			result = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", result, c.Resource, c.Rule, c.Value)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	failed := r.Failures()
	var err error
	if len(failed) == 0 {
		_, err = fmt.Fprintf(w, "\nall %d checks passed\n", len(r.Checks))
		return err
	}
	if _, err = fmt.Fprintf(w, "\n%d of %d checks failed:\n", len(failed), len(r.Checks)); err != nil {
		return err
	}
	for _, c := range failed {
		if _, err = fmt.Fprintf(w, "- %s: %s: %s\n", c.Resource, c.Rule, c.Fix); err != nil {
			return err
		}
	}
	return nil
}

// AuditOpt adds to what [Audit] checks.
type AuditOpt interface{ apply(*auditConfig) }

type auditOpt func(*auditConfig)

func (f auditOpt) apply(c *auditConfig) { f(c) }

type auditConfig struct {
	acks    string // the producer's acks as text; "" if no producer given
	acksAll bool
	err     error
}

// KgoProducer adds the check that a producer built from opts writes
// with acks=all; min.insync.replicas only guards acks=all writes.
func KgoProducer(opts ...kgo.Opt) AuditOpt {
	return auditOpt(func(c *auditConfig) {
		s, err := readKgo(opts)
		if err != nil {
			c.err = fmt.Errorf("produce: audit: reading the kgo options: %w: %w", ErrInvalidConfig, err)
			return
		}
		c.acks, c.acksAll = "RequiredAcks = "+s.acksValue(), s.acks == kgo.AllISRAcks()
	})
}

// SaramaProducer adds the check that a producer built from cfg writes
// with acks=all (Producer.RequiredAcks = WaitForAll).
func SaramaProducer(cfg *sarama.Config) AuditOpt {
	return auditOpt(func(c *auditConfig) {
		if cfg == nil {
			c.err = fmt.Errorf("produce: audit: nil *sarama.Config: %w", ErrInvalidConfig)
			return
		}
		a := cfg.Producer.RequiredAcks
		c.acks, c.acksAll = "Producer.RequiredAcks = "+saramaAcksString(a), a == sarama.WaitForAll
	})
}

// Audit reads the cluster's configuration through adm (Metadata and
// DescribeConfigs) and checks the cluster side of the no-loss checklist:
//
//   - every broker: default.replication.factor >= 3 (topics created
//     without one get it), min.insync.replicas >= 2 and
//     unclean.leader.election.enable = false as defaults for new topics;
//   - every topic in topics: it exists, every partition has at least 3
//     replicas, min.insync.replicas >= 2 and below the replication factor
//     (else one broker down stops acks=all writes), and
//     unclean.leader.election.enable = false. A topic setting absent from
//     the topic's configs falls back to the broker's value, then to
//     Kafka's default;
//   - with KgoProducer or SaramaProducer: the producer uses acks=all.
//
// Audit returns an error only if it could not read the cluster; failed
// rules are in the Report (see [Report.Err]).
func Audit(ctx context.Context, adm *kadm.Client, topics []string, opts ...AuditOpt) (Report, error) {
	var cfg auditConfig
	for _, o := range opts {
		if o != nil {
			o.apply(&cfg)
		}
	}
	if cfg.err != nil {
		return Report{}, cfg.err
	}
	if adm == nil {
		return Report{}, errors.New("produce: audit: nil *kadm.Client")
	}
	snap, err := readCluster(ctx, adm, topics)
	if err != nil {
		return Report{}, err
	}
	snap.acks, snap.acksAll = cfg.acks, cfg.acksAll
	return snap.evaluate(), nil
}

// configValue is one config entry as read from DescribeConfigs.
type configValue struct {
	value  string
	source kmsg.ConfigSource
}

// clusterSnapshot is what Audit read; evaluate turns it into a Report.
type clusterSnapshot struct {
	brokers       []int32                          // broker ids, sorted
	brokerConfigs map[int32]map[string]configValue // nil map for a broker whose configs could not be read
	brokerErrs    map[int32]error

	topics       []string                          // the topics asked for, in order
	replicas     map[string]int                    // smallest replica count over a topic's partitions; absent if the topic does not exist
	topicErrs    map[string]error                  // why a topic's metadata or configs could not be read
	topicConfigs map[string]map[string]configValue // per topic

	acks    string
	acksAll bool
}

func readCluster(ctx context.Context, adm *kadm.Client, topics []string) (clusterSnapshot, error) {
	snap := clusterSnapshot{
		brokerConfigs: map[int32]map[string]configValue{},
		brokerErrs:    map[int32]error{},
		topics:        slices.Clone(topics),
		replicas:      map[string]int{},
		topicErrs:     map[string]error{},
		topicConfigs:  map[string]map[string]configValue{},
	}
	var md kadm.Metadata
	var err error
	if len(topics) == 0 {
		md, err = adm.BrokerMetadata(ctx)
	} else {
		md, err = adm.Metadata(ctx, topics...)
	}
	if err != nil {
		return snap, fmt.Errorf("produce: audit: metadata: %w", err)
	}
	for _, b := range md.Brokers {
		snap.brokers = append(snap.brokers, b.NodeID)
	}
	slices.Sort(snap.brokers)

	var existing []string
	for _, t := range topics {
		td, ok := md.Topics[t]
		switch {
		case !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition):
			continue // replicas[t] absent: the topic does not exist
		case td.Err != nil:
			snap.topicErrs[t] = td.Err
			continue
		}
		least := -1
		for _, p := range td.Partitions {
			if least < 0 || len(p.Replicas) < least {
				least = len(p.Replicas)
			}
		}
		snap.replicas[t] = max(least, 0)
		existing = append(existing, t)
	}

	if len(snap.brokers) > 0 {
		rcs, err := adm.DescribeBrokerConfigs(ctx, snap.brokers...)
		if err != nil && len(rcs) == 0 {
			return snap, fmt.Errorf("produce: audit: describing broker configs: %w", err)
		}
		for _, rc := range rcs {
			id, perr := strconv.ParseInt(rc.Name, 10, 32)
			if perr != nil {
				continue
			}
			if rc.Err != nil {
				snap.brokerErrs[int32(id)] = rc.Err
				continue
			}
			snap.brokerConfigs[int32(id)] = configMap(rc.Configs)
		}
		for _, id := range snap.brokers {
			if _, ok := snap.brokerConfigs[id]; !ok && snap.brokerErrs[id] == nil {
				snap.brokerErrs[id] = fmt.Errorf("no answer to DescribeConfigs: %v", err)
			}
		}
	}

	if len(existing) > 0 {
		rcs, err := adm.DescribeTopicConfigs(ctx, existing...)
		if err != nil && len(rcs) == 0 {
			return snap, fmt.Errorf("produce: audit: describing topic configs: %w", err)
		}
		for _, rc := range rcs {
			if rc.Err != nil {
				snap.topicErrs[rc.Name] = rc.Err
				continue
			}
			snap.topicConfigs[rc.Name] = configMap(rc.Configs)
		}
		for _, t := range existing {
			if _, ok := snap.topicConfigs[t]; !ok && snap.topicErrs[t] == nil {
				snap.topicErrs[t] = fmt.Errorf("no answer to DescribeConfigs: %v", err)
			}
		}
	}
	return snap, nil
}

func configMap(cs []kadm.Config) map[string]configValue {
	m := make(map[string]configValue, len(cs))
	for _, c := range cs {
		if c.Value != nil {
			m[c.Key] = configValue{value: *c.Value, source: c.Source}
		}
	}
	return m
}

// Kafka's defaults for the settings Audit reads, used when a broker does
// not report them.
var kafkaDefaults = map[string]string{
	"default.replication.factor":     "1",
	"min.insync.replicas":            "1",
	"unclean.leader.election.enable": "false",
}

// lookup returns the value of key for a topic (topic != "") or a broker,
// falling back from topic to broker to Kafka's default, and text saying
// where it came from.
func (s clusterSnapshot) lookup(topic string, broker int32, key string) (value, from string) {
	if topic != "" {
		if v, ok := s.topicConfigs[topic][key]; ok {
			return v.value, sourceText(v.source)
		}
		for _, id := range s.brokers {
			if v, ok := s.brokerConfigs[id][key]; ok {
				return v.value, "broker " + strconv.Itoa(int(id))
			}
		}
	} else if v, ok := s.brokerConfigs[broker][key]; ok {
		return v.value, sourceText(v.source)
	}
	return kafkaDefaults[key], "Kafka default"
}

func sourceText(s kmsg.ConfigSource) string {
	switch s {
	case kmsg.ConfigSourceDynamicTopicConfig:
		return "topic config"
	case kmsg.ConfigSourceDynamicBrokerConfig:
		return "dynamic broker config"
	case kmsg.ConfigSourceDynamicDefaultBrokerConfig:
		return "dynamic cluster default"
	case kmsg.ConfigSourceStaticBrokerConfig:
		return "server.properties"
	case kmsg.ConfigSourceDefaultConfig:
		return "Kafka default"
	}
	return "source " + strconv.Itoa(int(s))
}

// evaluate applies the rules to what was read.
func (s clusterSnapshot) evaluate() Report {
	var r Report
	add := func(rule, resource, value string, pass bool, fix string) {
		c := Check{Rule: rule, Resource: resource, Value: value, Pass: pass}
		if !pass {
			c.Fix = fix
		}
		r.Checks = append(r.Checks, c)
	}
	atLeast := func(v string, n int) (int, bool) {
		i, err := strconv.Atoi(strings.TrimSpace(v))
		return i, err == nil && i >= n
	}
	isFalse := func(v string) bool { return strings.EqualFold(strings.TrimSpace(v), "false") }

	for _, id := range s.brokers {
		res := "broker " + strconv.Itoa(int(id))
		if err := s.brokerErrs[id]; err != nil {
			for _, rule := range []string{RuleDefaultReplicationFactor, RuleMinInsyncReplicas, RuleUncleanElection} {
				add(rule, res, "unreadable: "+err.Error(), false, "allow DescribeConfigs on the broker (ACL DESCRIBE_CONFIGS on CLUSTER) and audit again")
			}
			continue
		}
		v, from := s.lookup("", id, "default.replication.factor")
		_, ok := atLeast(v, MinReplicationFactor)
		add(RuleDefaultReplicationFactor, res, v+" ("+from+")", ok,
			"set default.replication.factor=3 on every broker; topics created without a replication factor get it")
		v, from = s.lookup("", id, "min.insync.replicas")
		_, ok = atLeast(v, MinInsyncReplicas)
		add(RuleMinInsyncReplicas, res, v+" ("+from+")", ok,
			"set min.insync.replicas=2 on every broker, the default for topics that do not set it")
		v, from = s.lookup("", id, "unclean.leader.election.enable")
		add(RuleUncleanElection, res, v+" ("+from+")", isFalse(v),
			"set unclean.leader.election.enable=false on every broker")
	}

	for _, t := range s.topics {
		res := "topic " + t
		if err := s.topicErrs[t]; err != nil {
			add(RuleTopicExists, res, "unreadable: "+err.Error(), false, "allow DESCRIBE and DESCRIBE_CONFIGS on the topic and audit again")
			continue
		}
		rf, exists := s.replicas[t]
		if !exists {
			add(RuleTopicExists, res, "missing", false, fmt.Sprintf(
				"kafka-topics.sh --create --topic %s --replication-factor %d --config min.insync.replicas=%d --config unclean.leader.election.enable=false",
				t, MinReplicationFactor, MinInsyncReplicas))
			continue
		}
		add(RuleReplicationFactor, res, strconv.Itoa(rf)+" (least over partitions)", rf >= MinReplicationFactor, fmt.Sprintf(
			"add replicas until every partition of %s has %d with kafka-reassign-partitions.sh, or recreate the topic with --replication-factor %d",
			t, MinReplicationFactor, MinReplicationFactor))

		v, from := s.lookup(t, -1, "min.insync.replicas")
		isr, ok := atLeast(v, MinInsyncReplicas)
		add(RuleMinInsyncReplicas, res, v+" ("+from+")", ok, fmt.Sprintf(
			"kafka-configs.sh --alter --entity-type topics --entity-name %s --add-config min.insync.replicas=%d", t, MinInsyncReplicas))
		_, parsed := atLeast(v, 0)
		below := parsed && isr < rf
		add(RuleMinInsyncBelowRF, res, fmt.Sprintf("%s < %d", v, rf), below, fmt.Sprintf(
			"with min.insync.replicas >= replication.factor one broker down stops every acks=all write to %s; raise the replication factor to %d or more",
			t, max(isr+1, MinReplicationFactor)))

		v, from = s.lookup(t, -1, "unclean.leader.election.enable")
		add(RuleUncleanElection, res, v+" ("+from+")", isFalse(v), fmt.Sprintf(
			"kafka-configs.sh --alter --entity-type topics --entity-name %s --add-config unclean.leader.election.enable=false", t))
	}

	if s.acks != "" {
		add(RuleProducerAcks, "producer", s.acks, s.acksAll,
			"use acks=all (kgo.RequiredAcks(kgo.AllISRAcks()) or Producer.RequiredAcks = sarama.WaitForAll); min.insync.replicas only guards acks=all writes")
	}
	return r
}
