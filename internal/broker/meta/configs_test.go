package meta

import "testing"

func TestTheOffsetsTopicIsNeverTrimmedByRetention(t *testing.T) {
	d := Defaults{ConfigRetentionMs: "60000", ConfigRetentionBytes: "1048576"}
	orders := &Topic{Name: "orders"}
	if ms, bytes := d.Int(orders, ConfigRetentionMs), d.Int(orders, ConfigRetentionBytes); ms != 60000 || bytes != 1048576 {
		t.Fatalf("an ordinary topic's retention: %d ms, %d bytes; want the broker defaults", ms, bytes)
	}
	offsets := &Topic{Name: OffsetsTopic, Internal: true, Configs: map[string]string{ConfigRetentionMs: "1"}}
	if ms, bytes := d.Int(offsets, ConfigRetentionMs), d.Int(offsets, ConfigRetentionBytes); ms != -1 || bytes != -1 {
		t.Fatalf("the offsets topic's retention: %d ms, %d bytes; want -1 and -1 (kept)", ms, bytes)
	}
	// DescribeConfigs reports it as the topic's own setting.
	if v, explicit := d.TopicConfig(offsets, ConfigRetentionMs); v != "-1" || !explicit {
		t.Fatalf("retention.ms of the offsets topic described as %q (explicit %v), want -1, explicit", v, explicit)
	}
}

func TestFlushMessagesIsAcceptedAsKafkaSpellsIt(t *testing.T) {
	for v, ok := range map[string]bool{"1": true, "1000": true, "9223372036854775807": true, "0": false, "-1": false, "x": false} {
		if err := ValidateTopicConfig(ConfigFlushMessages, v); (err == nil) != ok {
			t.Errorf("flush.messages=%s: %v, want accepted=%v", v, err, ok)
		}
	}
	if got := (Defaults{}).Int(&Topic{Name: "t"}, ConfigFlushMessages); got != 9223372036854775807 {
		t.Fatalf("default flush.messages %d, want Long.MAX_VALUE as Kafka", got)
	}
}
