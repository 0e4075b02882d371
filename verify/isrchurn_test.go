package verify

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/kafkaguard/kafkaguard/kafkatest"
	"github.com/kafkaguard/kafkaguard/produce"
)

// The ISR-churn runs are small and short: one partition, 150 records a second for about seven
// seconds, the span an ISR-churn chain needs on the bundled cluster (a 2s lag bound).
const (
	isrChurnRecords = 1100
	isrChurnRate    = 150
)

// isrChurnRun runs NoLoss under the random schedule of seed on c.
func isrChurnRun(t *testing.T, c *kafkatest.Cluster, seed int64) (Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return Run(ctx, Config{Preset: produce.NoLoss, Fault: FaultRandom, Seed: seed, Records: isrChurnRecords, Keys: 3, Rate: isrChurnRate,
		Partitions: 1, Bootstrap: c.Bootstrap(), Faults: ClusterFaults(c)})
}

// isrChurnShape is the shape Run draws isrChurnRun's schedules for on a three-broker cluster.
func isrChurnShape() Shape {
	return Shape{Brokers: []int32{0, 1, 2}, Partitions: 1, Ops: SupportedOps(ClusterFaults(nil)),
		Span: time.Duration(isrChurnRecords) * time.Second / isrChurnRate}
}

// TestRandomSchedulesFindTheLossOfAPendingISRJoin is issue 13's proof against issue 11 item 1:
// on a bundled cluster re-created with the bug (kafkatest.UnsafeHWOnCommittedISR: a leader
// counts only the committed ISR toward its high watermark while a follower's join is pending),
// the random nemesis finds acknowledged records lost under NoLoss within 200 seeds, and the same
// seeds on the fixed broker lose nothing.
//
// Seeds run in order from 0; a seed whose schedule carries no ISR-churn chain is not run (only
// that chain reaches this loss: leaving such seeds out can only make the first hit later, so the
// bound still holds). Typically the first or second seed with a chain (seed 1 or 2) finds it: of
// the first seven chains (seeds 1, 2, 3, 5, 6, 10, 11) four lost 70 to 97 acknowledged records in
// one exploration; under -race seed 1 missed and seed 2 lost 71. Each seed runs on both clusters
// at once, about eight seconds; the test takes 8 to 16 s.
func TestRandomSchedulesFindTheLossOfAPendingISRJoin(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs the bundled cluster for eight seconds or more a seed")
	}
	var unsafe, fixed *kafkatest.Cluster
	var wg sync.WaitGroup
	wg.Go(func() { unsafe = kafkatest.NewCluster(t, kafkatest.Brokers(3), kafkatest.UnsafeHWOnCommittedISR()) })
	wg.Go(func() { fixed = kafkatest.NewCluster(t, kafkatest.Brokers(3)) })
	wg.Wait()
	if t.Failed() {
		return
	}
	for seed := int64(0); seed < 200; seed++ {
		if !hasISRChurn(NewSchedule(seed, isrChurnShape())) {
			continue
		}
		var bad, good Result
		var errBad, errGood error
		wg.Go(func() { bad, errBad = isrChurnRun(t, unsafe, seed) })
		wg.Go(func() { good, errGood = isrChurnRun(t, fixed, seed) })
		wg.Wait()
		if err := errors.Join(errBad, errGood); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		t.Logf("seed %d: with the bug acked %d, anomalies %s; fixed: acked %d, anomalies %s\n  %s", seed,
			bad.Report.Acked, bad.Anomalies, good.Report.Acked, good.Anomalies, bad.Schedule)
		if good.Anomalies.String() != "none" || good.Err() != nil || good.Report.Acked == 0 {
			t.Fatalf("seed %d on the fixed broker: acked %d, anomalies %s, %v", seed, good.Report.Acked, good.Anomalies, good.Err())
		}
		lost := bad.Anomalies.Count(LostWrite) + bad.Anomalies.Count(Unseen)
		if lost == 0 {
			continue
		}
		if !errors.Is(bad.Err(), ErrLost) || bad.Report.Lost != lost {
			t.Fatalf("seed %d with the bug: %d lost-write/unseen, Report.Lost %d, Err %v: want the loss reported as a broken promise", seed, lost, bad.Report.Lost, bad.Err())
		}
		t.Logf("the nemesis found the loss at seed %d", seed)
		return
	}
	t.Fatal("no acknowledged record lost in 200 seeds with UnsafeHWOnCommittedISR: the nemesis does not reach a pending ISR join")
}

func hasISRChurn(s Schedule) bool {
	for _, w := range s.Windows {
		if w.Family == FamilyISRChurn {
			return true
		}
	}
	return false
}
