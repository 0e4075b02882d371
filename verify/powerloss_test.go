package verify

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kafkaguard/kafkaguard/kafkatest"
	"github.com/kafkaguard/kafkaguard/produce"
)

// TestRunPowerLossOfAllReplicas runs NoLoss under FaultPowerLossAllReplicas both ways: with the
// default flush policy (no fsync, as Kafka) acknowledged records are lost and the verdict allows
// it (NoLoss never promised to survive a power loss of every replica); with flush.messages=1
// nothing acknowledged may be lost.
func TestRunPowerLossOfAllReplicas(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t, kafkatest.Brokers(3))
	for _, tt := range []struct {
		name     string
		configs  map[string]string
		wantLoss bool
	}{
		{"default-flush", nil, true},
		{"flush.messages=1", map[string]string{"flush.messages": "1"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			res, err := Run(ctx, Config{
				Preset: produce.NoLoss, Fault: FaultPowerLossAllReplicas, TopicConfigs: tt.configs,
				Records: 600, Keys: 3, Rate: 1000, Partitions: 1,
				Bootstrap: c.Bootstrap(), Faults: ClusterFaults(c),
			})
			if err != nil {
				t.Fatal(err)
			}
			r := res.Report
			t.Logf("%s: sent %d, acked %d, failed %d, lost %d, verdict %q", res.Topic, res.Sent, r.Acked, res.Failed, r.Lost, res.Verdict())
			if err := res.Err(); err != nil {
				t.Fatal(err)
			}
			if tt.wantLoss {
				if r.Lost == 0 {
					t.Fatal("no acknowledged record lost by a power loss of every replica without fsync: the schedule did not bite")
				}
				if v := res.Verdict(); v == "ok" || v[:4] == "FAIL" {
					t.Fatalf("verdict %q, want the loss shown as allowed", v)
				}
				return
			}
			if r.Lost != 0 || r.Acked == 0 {
				t.Fatalf("with flush.messages=1: acked %d, lost %d; want nothing lost", r.Acked, r.Lost)
			}
		})
	}
	// The same loss under any other schedule, or with flush.messages=1, is a broken promise.
	lossy := Result{Preset: produce.NoLoss, Fault: FaultPowerLossAllReplicas, TopicConfigs: map[string]string{"flush.messages": "1"}, Report: Report{Acked: 2, Lost: 1}}
	if err := lossy.Err(); !errors.Is(err, ErrLost) {
		t.Fatalf("a loss with flush.messages=1: Err() = %v, want ErrLost", err)
	}
	lossy.Fault = FaultKillLeader
	if err := lossy.Err(); !errors.Is(err, ErrLost) {
		t.Fatalf("a loss under %s: Err() = %v, want ErrLost", lossy.Fault, err)
	}
}
