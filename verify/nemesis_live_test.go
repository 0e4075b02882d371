package verify

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kafkaguard/kafkaguard/kafkatest"
	"github.com/kafkaguard/kafkaguard/produce"
)

// TestRandomSchedulesShowLeaderAckLossAndNoLossNone is the random nemesis's proof that it can
// reach the danger: within ten seeds (from seed 14, to keep the test short: seed 14 isolates the
// leader past the session timeout, and acks=1 loses there; so does seed 21), LeaderAck (acks=1)
// loses acknowledged records, named lost-write or unseen, while NoLoss under the same seed loses
// nothing and shows no anomaly. The workload spans three seconds: in two (the default's), fewer
// windows outlast the session timeout and acks=1 loses in about one seed in twenty.
func TestRandomSchedulesShowLeaderAckLossAndNoLossNone(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t, kafkatest.Brokers(3))
	run := func(p produce.Preset, seed int64) Result {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		res, err := Run(ctx, Config{Preset: p, Fault: FaultRandom, Seed: seed, Records: 450, Keys: 3, Rate: 150,
			Partitions: 1, Bootstrap: c.Bootstrap(), Faults: ClusterFaults(c)})
		if err != nil {
			t.Fatalf("seed %d %s: %v", seed, p, err)
		}
		t.Logf("seed %d %s: acked %d, lost %d, anomalies %s; %s", seed, p, res.Report.Acked, res.Report.Lost, res.Anomalies, res.Schedule)
		return res
	}
	for seed := int64(14); seed < 24; seed++ {
		la := run(produce.LeaderAck, seed)
		lost := la.Anomalies.Count(LostWrite) + la.Anomalies.Count(Unseen)
		if lost == 0 {
			continue
		}
		// A loaded machine can also fail some sends under the faults: the verdict then says
		// how many were not acked ("allowed by acks=1 (12 not acked)").
		if lost != la.Report.Lost || la.Err() != nil || !strings.HasPrefix(la.Verdict(), "allowed by acks=1") {
			t.Errorf("seed %d LeaderAck: anomalies %s, Report.Lost %d, Err %v, verdict %q", seed, la.Anomalies, la.Report.Lost, la.Err(), la.Verdict())
		}
		nl := run(produce.NoLoss, seed)
		if err := nl.Err(); err != nil || nl.Anomalies.String() != "none" || nl.Report.Acked == 0 {
			t.Fatalf("seed %d NoLoss: acked %d, anomalies %s, %v", seed, nl.Report.Acked, nl.Anomalies, err)
		}
		return
	}
	t.Fatal("LeaderAck lost nothing under ten random schedules: the nemesis does not reach acks=1's danger")
}
