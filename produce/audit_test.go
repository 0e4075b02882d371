package produce

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func cv(v string, s kmsg.ConfigSource) configValue { return configValue{value: v, source: s} }

// goodBroker is a broker config that passes every broker rule.
func goodBroker() map[string]configValue {
	return map[string]configValue{
		"default.replication.factor":     cv("3", kmsg.ConfigSourceStaticBrokerConfig),
		"min.insync.replicas":            cv("2", kmsg.ConfigSourceStaticBrokerConfig),
		"unclean.leader.election.enable": cv("false", kmsg.ConfigSourceDefaultConfig),
	}
}

func snapshot(topics ...string) clusterSnapshot {
	s := clusterSnapshot{
		brokers:       []int32{1, 2, 3},
		brokerConfigs: map[int32]map[string]configValue{1: goodBroker(), 2: goodBroker(), 3: goodBroker()},
		brokerErrs:    map[int32]error{},
		topics:        topics,
		replicas:      map[string]int{},
		topicErrs:     map[string]error{},
		topicConfigs:  map[string]map[string]configValue{},
	}
	for _, t := range topics {
		s.replicas[t] = 3
		s.topicConfigs[t] = map[string]configValue{
			"min.insync.replicas":            cv("2", kmsg.ConfigSourceStaticBrokerConfig),
			"unclean.leader.election.enable": cv("false", kmsg.ConfigSourceDefaultConfig),
		}
	}
	return s
}

// failed returns "resource: rule" for each failed check.
func failed(r Report) []string {
	var out []string
	for _, c := range r.Failures() {
		out = append(out, c.Resource+": "+c.Rule)
	}
	return out
}

func TestAuditRulesOnClusterSnapshots(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(*clusterSnapshot)
		want  []string // failed checks
		value string   // Value of the first failed check, if checked
	}{
		{name: "hardened cluster passes", edit: func(*clusterSnapshot) {}},
		{name: "two replicas", edit: func(s *clusterSnapshot) { s.replicas["orders"] = 2 },
			want: []string{"topic orders: " + RuleReplicationFactor, "topic orders: " + RuleMinInsyncBelowRF}, value: "2 (least over partitions)"},
		{name: "min insync 1 set on the topic", edit: func(s *clusterSnapshot) {
			s.topicConfigs["orders"]["min.insync.replicas"] = cv("1", kmsg.ConfigSourceDynamicTopicConfig)
		}, want: []string{"topic orders: " + RuleMinInsyncReplicas}, value: "1 (topic config)"},
		{name: "min insync equal to replication factor", edit: func(s *clusterSnapshot) {
			s.topicConfigs["orders"]["min.insync.replicas"] = cv("3", kmsg.ConfigSourceDynamicTopicConfig)
		}, want: []string{"topic orders: " + RuleMinInsyncBelowRF}, value: "3 < 3"},
		{name: "unclean election on the topic", edit: func(s *clusterSnapshot) {
			s.topicConfigs["orders"]["unclean.leader.election.enable"] = cv("true", kmsg.ConfigSourceDynamicTopicConfig)
		}, want: []string{"topic orders: " + RuleUncleanElection}, value: "true (topic config)"},
		{name: "topic config missing falls back to broker", edit: func(s *clusterSnapshot) {
			delete(s.topicConfigs["orders"], "min.insync.replicas")
			s.brokerConfigs[1]["min.insync.replicas"] = cv("1", kmsg.ConfigSourceStaticBrokerConfig)
		}, want: []string{"broker 1: " + RuleMinInsyncReplicas, "topic orders: " + RuleMinInsyncReplicas}, value: "1 (server.properties)"},
		{name: "nothing reported falls back to Kafka defaults", edit: func(s *clusterSnapshot) {
			for id := range s.brokerConfigs {
				s.brokerConfigs[id] = map[string]configValue{}
			}
			s.topicConfigs["orders"] = map[string]configValue{}
		}, want: []string{
			"broker 1: " + RuleDefaultReplicationFactor, "broker 1: " + RuleMinInsyncReplicas,
			"broker 2: " + RuleDefaultReplicationFactor, "broker 2: " + RuleMinInsyncReplicas,
			"broker 3: " + RuleDefaultReplicationFactor, "broker 3: " + RuleMinInsyncReplicas,
			"topic orders: " + RuleMinInsyncReplicas,
		}, value: "1 (Kafka default)"},
		{name: "missing topic", edit: func(s *clusterSnapshot) { delete(s.replicas, "orders") },
			want: []string{"topic orders: " + RuleTopicExists}, value: "missing"},
		{name: "unreadable broker configs fail closed", edit: func(s *clusterSnapshot) {
			delete(s.brokerConfigs, 2)
			s.brokerErrs[2] = errors.New("CLUSTER_AUTHORIZATION_FAILED")
		}, want: []string{"broker 2: " + RuleDefaultReplicationFactor, "broker 2: " + RuleMinInsyncReplicas, "broker 2: " + RuleUncleanElection}},
		{name: "garbage value fails", edit: func(s *clusterSnapshot) {
			s.topicConfigs["orders"]["min.insync.replicas"] = cv("two", kmsg.ConfigSourceDynamicTopicConfig)
		}, want: []string{"topic orders: " + RuleMinInsyncReplicas, "topic orders: " + RuleMinInsyncBelowRF}},
		{name: "producer with leader acks", edit: func(s *clusterSnapshot) { s.acks, s.acksAll = "RequiredAcks = LeaderAck", false },
			want: []string{"producer: " + RuleProducerAcks}, value: "RequiredAcks = LeaderAck"},
		{name: "producer with acks=all", edit: func(s *clusterSnapshot) { s.acks, s.acksAll = "RequiredAcks = AllISRAcks", true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := snapshot("orders")
			tc.edit(&s)
			r := s.evaluate()
			if got := failed(r); !slices.Equal(got, tc.want) {
				t.Fatalf("failed = %v, want %v", got, tc.want)
			}
			if r.Passed() != (tc.want == nil) {
				t.Errorf("Passed = %v", r.Passed())
			}
			if tc.want == nil {
				if r.Err() != nil {
					t.Errorf("Err = %v", r.Err())
				}
				return
			}
			if !errors.Is(r.Err(), ErrAuditFailed) {
				t.Errorf("Err = %v, want ErrAuditFailed", r.Err())
			}
			if tc.value != "" && r.Failures()[0].Value != tc.value {
				t.Errorf("Value = %q, want %q", r.Failures()[0].Value, tc.value)
			}
			for _, c := range r.Failures() {
				if c.Fix == "" {
					t.Errorf("failed check without a fix: %+v", c)
				}
			}
		})
	}
}

func TestAuditChecksEveryBrokerAndTopic(t *testing.T) {
	r := snapshot("a", "b").evaluate()
	// 3 rules per broker, 4 per existing topic.
	if len(r.Checks) != 3*3+2*4 {
		t.Fatalf("%d checks, want 17", len(r.Checks))
	}
	for _, c := range r.Checks {
		if !c.Pass || c.Fix != "" {
			t.Errorf("check %+v: want pass without a fix", c)
		}
	}
}

func TestReportTextShowsEachCheckAndTheFixes(t *testing.T) {
	s := snapshot("orders")
	s.topicConfigs["orders"]["min.insync.replicas"] = cv("1", kmsg.ConfigSourceDynamicTopicConfig)
	var buf bytes.Buffer
	if err := s.evaluate().WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var fails, passes int
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "FAIL"):
			fails++
		case strings.HasPrefix(l, "pass"):
			passes++
		}
	}
	if fails != 1 || passes != 12 {
		t.Errorf("%d FAIL and %d pass lines, want 1 and 12:\n%s", fails, passes, out)
	}
	for _, want := range []string{"1 of 13 checks failed", "topic orders: min.insync.replicas >= 2: kafka-configs.sh", "--add-config min.insync.replicas=2"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	buf.Reset()
	if err := snapshot("orders").evaluate().WriteText(&buf); err != nil || !strings.Contains(buf.String(), "all 13 checks passed") {
		t.Errorf("passing report:\n%s", buf.String())
	}
}

func TestReportJSONIsMachineReadable(t *testing.T) {
	s := snapshot("orders")
	delete(s.replicas, "orders")
	out, err := json.Marshal(s.evaluate())
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Passed bool `json:"passed"`
		Checks []struct {
			Rule, Resource, Value, Fix string
			Pass                       bool
		} `json:"checks"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if got.Passed || len(got.Checks) != 10 {
		t.Fatalf("passed=%v with %d checks: %s", got.Passed, len(got.Checks), out)
	}
	last := got.Checks[len(got.Checks)-1]
	if last.Rule != RuleTopicExists || last.Resource != "topic orders" || last.Pass || !strings.Contains(last.Fix, "--replication-factor 3") {
		t.Errorf("last check = %+v", last)
	}
	empty, _ := json.Marshal(Report{})
	if string(empty) != `{"passed":true,"checks":[]}` {
		t.Errorf("empty report JSON = %s", empty)
	}
}

func TestAuditOptionsReadTheProducersAcks(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  AuditOpt
		acks string
		all  bool
	}{
		{"kgo defaults", KgoProducer(), "RequiredAcks = AllISRAcks", true},
		{"kgo leader ack", KgoProducer(kgo.DisableIdempotentWrite(), kgo.RequiredAcks(kgo.LeaderAck())), "RequiredAcks = LeaderAck", false},
		{"kgo idempotent leader ack", KgoProducer(kgo.RequiredAcks(kgo.LeaderAck())), "RequiredAcks = LeaderAck", false},
		{"sarama defaults", SaramaProducer(sarama.NewConfig()), "Producer.RequiredAcks = WaitForLocal", false},
	} {
		var c auditConfig
		tc.opt.apply(&c)
		if c.err != nil || c.acks != tc.acks || c.acksAll != tc.all {
			t.Errorf("%s: acks=%q all=%v err=%v; want %q %v", tc.name, c.acks, c.acksAll, c.err, tc.acks, tc.all)
		}
	}
	var c auditConfig
	SaramaProducer(nil).apply(&c)
	if !errors.Is(c.err, ErrInvalidConfig) {
		t.Errorf("nil sarama config: %v", c.err)
	}
	if _, err := Audit(t.Context(), nil, nil); err == nil {
		t.Error("Audit with a nil client returned no error")
	}
}
