package server

import (
	"context"
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
)

// configSource names where a topic config's value comes from, as DescribeConfigs reports it.
func configSource(explicit bool, d meta.Defaults, name string) int8 {
	switch {
	case explicit:
		return int8(kmsg.ConfigSourceDynamicTopicConfig)
	case d[name] != "":
		return int8(kmsg.ConfigSourceStaticBrokerConfig)
	}
	return int8(kmsg.ConfigSourceDefaultConfig)
}

// brokerConfigs are the broker settings DescribeConfigs reports for a broker resource: those the
// no-loss audit reads, and the ones that shape replication.
func (b *Broker) brokerConfigs() [][2]string {
	d := b.cfg.Defaults
	minISR, _ := d.DefaultTopicConfig(meta.ConfigMinISR)
	unclean, _ := d.DefaultTopicConfig(meta.ConfigUncleanElection)
	return [][2]string{
		{"broker.id", strconv.Itoa(int(b.cfg.ID))},
		{"node.id", strconv.Itoa(int(b.cfg.ID))},
		{"min.insync.replicas", minISR},
		{"unclean.leader.election.enable", unclean},
		{"default.replication.factor", strconv.Itoa(int(b.cfg.DefaultReplicationFactor))},
		{"num.partitions", strconv.Itoa(int(b.cfg.DefaultPartitions))},
		{"auto.create.topics.enable", strconv.FormatBool(b.cfg.AutoCreateTopics)},
		{"replica.lag.time.max.ms", strconv.FormatInt(b.cfg.ReplicaLagMax.Milliseconds(), 10)},
		{"offsets.topic.num.partitions", strconv.Itoa(int(b.cfg.Group.OffsetsPartitions))},
		{"socket.request.max.bytes", strconv.Itoa(int(b.cfg.MaxRequestBytes))},
	}
}

// handleDescribeConfigs reports topic configs (explicit values and the defaults behind them) and
// broker configs.
func (b *Broker) handleDescribeConfigs(_ context.Context, req *kmsg.DescribeConfigsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	img := b.Image()
	for _, rr := range req.Resources {
		sr := kmsg.NewDescribeConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		want := func(name string) bool { return rr.ConfigNames == nil || slices.Contains(rr.ConfigNames, name) }
		add := func(name, value string, source int8, readOnly bool) {
			if !want(name) {
				return
			}
			c := kmsg.NewDescribeConfigsResponseResourceConfig()
			c.Name, c.Value, c.ReadOnly = name, kmsg.StringPtr(value), readOnly
			c.Source = kmsg.ConfigSource(source)
			c.IsDefault = source == int8(kmsg.ConfigSourceDefaultConfig)
			if req.IncludeSynonyms {
				syn := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
				syn.Name, syn.Value, syn.Source = name, kmsg.StringPtr(value), kmsg.ConfigSource(source)
				c.ConfigSynonyms = append(c.ConfigSynonyms, syn)
			}
			sr.Configs = append(sr.Configs, c)
		}
		switch rr.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			t := img.Topic(rr.ResourceName)
			if t == nil {
				sr.ErrorCode = kerr.UnknownTopicOrPartition.Code
				sr.ErrorMessage = kmsg.StringPtr("unknown topic " + rr.ResourceName)
				break
			}
			for _, name := range meta.TopicConfigNames() {
				v, explicit := b.cfg.Defaults.TopicConfig(t, name)
				add(name, v, configSource(explicit, b.cfg.Defaults, name), false)
			}
		case kmsg.ConfigResourceTypeBroker:
			if rr.ResourceName != "" && rr.ResourceName != strconv.Itoa(int(b.cfg.ID)) {
				sr.ErrorCode = kerr.InvalidRequest.Code
				sr.ErrorMessage = kmsg.StringPtr("broker configs are answered by the broker itself; this is broker " + strconv.Itoa(int(b.cfg.ID)))
				break
			}
			for _, kv := range b.brokerConfigs() {
				src := int8(kmsg.ConfigSourceStaticBrokerConfig)
				add(kv[0], kv[1], src, true)
			}
		default:
			sr.ErrorCode = kerr.InvalidRequest.Code
			sr.ErrorMessage = kmsg.StringPtr("unsupported config resource type " + rr.ResourceType.String())
		}
		resp.Resources = append(resp.Resources, sr)
	}
	return resp
}
