package verify

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kafkaguard/kafkaguard/kafkatest"
	"github.com/kafkaguard/kafkaguard/produce"
)

// copierTestConfig is a small, fast copier run against c.
func copierTestConfig(c *kafkatest.Cluster, mode CopierMode, fault Fault, seed uint64) CopierConfig {
	return CopierConfig{
		Config: Config{Preset: produce.NoLoss, Fault: fault, Seed: int64(seed), Records: 1600, Keys: 8, Rate: 800, Partitions: 3,
			Bootstrap: c.Bootstrap(), Faults: ClusterFaults(c)},
		Mode: mode, Copiers: 3, Crashes: 6, Seed: seed, SessionTimeout: 500 * time.Millisecond, TxnInterval: 50 * time.Millisecond,
		CommitInterval: 300 * time.Millisecond, // the at-least-once copiers: records handled since the last commit are copied again after a crash
	}
}

// TestRunCopierExactlyOnceHasNoDuplicatesWhereAtLeastOnceHas runs the copier workload with the
// same seeds (crash plan and nemesis schedule) in both modes: the exactly-once copiers, crashed
// up to six times, copy every acknowledged record once, in key order, and no read_committed read
// returns an aborted or unfinished transaction's record; the at-least-once copiers, crashed at
// the same moments, copy the records in flight at a crash twice: the checker fails them.
func TestRunCopierExactlyOnceHasNoDuplicatesWhereAtLeastOnceHas(t *testing.T) {
	t.Parallel()
	// The two modes run at once, each on a cluster of its own, so that neither's faults reach
	// the other.
	modes := CopierModes()
	clusters := make([]*kafkatest.Cluster, len(modes))
	for i := range modes {
		clusters[i] = kafkatest.NewCluster(t, kafkatest.Brokers(3))
	}
	runs := make([]CopierResult, len(modes))
	errs := make([]error, len(modes))
	var wg sync.WaitGroup
	for i, mode := range modes {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			runs[i], errs[i] = RunCopier(ctx, copierTestConfig(clusters[i], mode, FaultRandom, 11))
		})
	}
	wg.Wait()
	results := map[CopierMode]CopierResult{}
	for i, mode := range modes {
		if errs[i] != nil {
			t.Fatalf("%s: %v", mode, errs[i])
		}
		res := runs[i]
		r := res.Copier
		t.Logf("%s: acked %d, copied %d, read %d, duplicated %d, lost %d, reordered %d, aborted reads %d, crashes %d, %s, log %d, %v",
			mode, r.Acked, r.Copied, r.Read, r.Duplicated, r.Lost, r.Reordered, r.AbortedReads, r.Crashes, r.Findings, len(res.History.Log), res.Duration)
		results[mode] = res
	}
	eos, alo := results[CopierExactlyOnce], results[CopierAtLeastOnce]
	if err := eos.Err(); err != nil {
		t.Errorf("exactly-once: %v", err)
	}
	// The crash loop stops when the input is read back: a crash of six may not have come.
	if r := eos.Copier; r.Acked == 0 || r.Copied != r.Acked || r.Crashes == 0 {
		t.Errorf("exactly-once: acked %d, copied %d, crashes %d", r.Acked, r.Copied, r.Crashes)
	}
	if eos.Verdict() != "ok" {
		t.Errorf("exactly-once verdict %q", eos.Verdict())
	}
	markers := 0
	for _, e := range eos.History.Log {
		if e.Marker != MarkerNone {
			markers++
		}
	}
	if markers == 0 {
		t.Errorf("exactly-once: no transaction marker in the output's log")
	}
	if alo.Copier.Crashes == 0 || alo.Copier.Duplicated == 0 || alo.Copier.Lost != 0 || alo.Err() == nil {
		t.Errorf("at-least-once: duplicated %d, lost %d, err %v; want duplicates, no loss", alo.Copier.Duplicated, alo.Copier.Lost, alo.Err())
	}
}

// TestRunCopierAtLeastOnceRetriesAFailedCopy: an at-least-once copier whose write of a copy is
// refused (the output's leader answers its produce with a non-retriable error) copies the
// record again, as an at-least-once copier must, rather than leaving its key blocked: every
// acknowledged record is copied, none lost.
func TestRunCopierAtLeastOnceRetriesAFailedCopy(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t, kafkatest.Brokers(3))
	cfg := copierTestConfig(c, CopierAtLeastOnce, FaultNone, 3)
	cfg.Crashes, cfg.Records, cfg.Topic = 0, 2400, "refused"
	cfg.Output = cfg.Topic + "-out"
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	type outcome struct {
		res CopierResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := RunCopier(ctx, cfg)
		done <- outcome{res, err}
	}()
	// Once the copiers have settled into their group (each output partition holds 300 copies,
	// a second of the three the input takes), each output partition refuses its next write: no
	// rebalance follows to run the refused records again on another copier.
	for p := int32(0); p < int32(cfg.Partitions); {
		if pi, err := c.Partition(cfg.Output, p); err != nil || pi.HW < 300 {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		if err := c.FailProduces(cfg.Output, p, 1, kerr.InvalidRecord, 0); err != nil {
			t.Fatal(err)
		}
		p++
	}
	o := <-done
	if o.err != nil {
		t.Fatal(o.err)
	}
	r := o.res.Copier
	t.Logf("acked %d, copied %d, lost %d, duplicated %d, %v", r.Acked, r.Copied, r.Lost, r.Duplicated, o.res.Duration)
	if r.Acked != cfg.Records || r.Copied != r.Acked || r.Lost != 0 {
		t.Errorf("acked %d, copied %d, lost %d (%s): a refused copy was not written again", r.Acked, r.Copied, r.Lost, r.Findings)
	}
}
