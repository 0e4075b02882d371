package retry_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/internal/netcut"
	"github.com/kafkaguard/kafkaguard/internal/testkit"
	"github.com/kafkaguard/kafkaguard/produce"
	"github.com/kafkaguard/kafkaguard/retry"
)

// foreignMarker is a marker as a client not written in Go writes it, from
// the format in the package doc: record i of the source topic, failed once.
func foreignMarker(retryTopic, topic string, i int, now time.Time) *kgo.Record {
	ms := strconv.FormatInt(now.UnixMilli(), 10)
	h := func(k, v string) kgo.RecordHeader { return kgo.RecordHeader{Key: k, Value: []byte(v)} }
	return &kgo.Record{Topic: retryTopic, Key: []byte(fmt.Sprintf("key%d", i)), Value: []byte(fmt.Sprintf("r%d:-1", i)),
		Headers: []kgo.RecordHeader{
			h("kafkaguard.retry.kind", "marker"),
			h("kafkaguard.retry.topic", topic),
			h("kafkaguard.retry.partition", "0"),
			h("kafkaguard.retry.offset", strconv.Itoa(i)),
			h("kafkaguard.retry.timestamp", ms),
			h("kafkaguard.retry.attempts", "1"),
			h("kafkaguard.retry.due", ms),
			h("kafkaguard.retry.first-failed", ms),
			h("kafkaguard.retry.error", `{"attempt":1,"at":"`+now.UTC().Format(time.RFC3339)+`","error":"consumer failed"}`),
		}}
}

// writeForeignMarkers writes the markers of records 0..n-1 of e's topic
// (see foreignMarker) to its retry topic, due now.
func writeForeignMarkers(ctx context.Context, t *testing.T, e *env, n int) {
	t.Helper()
	now := time.Now()
	for i := range n {
		if err := e.cl.ProduceSync(ctx, foreignMarker(e.topic+retry.RetrySuffix, e.topic, i, now)).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

// readCommitted reads topic as a read_committed consumer, up to its last
// stable offset, without the transactions' control records.
func readCommitted(t *testing.T, bootstrap []string, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	admCl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap...))
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	lso, err := kadm.NewClient(admCl).ListCommittedOffsets(ctx, topic)
	if err == nil {
		err = lso.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	start := map[int32]kgo.Offset{}
	ends := map[int32]int64{}
	lso.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			start[o.Partition], ends[o.Partition] = kgo.NewOffset().AtStart(), o.Offset
		}
	})
	if len(start) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: start}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords(), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for remaining := len(ends); remaining > 0; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read_committed %s up to %v: %v", topic, ends, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			end := ends[r.Partition]
			if r.Offset >= end {
				return
			}
			if !r.Attrs.IsControl() {
				out = append(out, r)
			}
			if r.Offset+1 == end {
				remaining--
			}
		})
	}
	return out
}

// outcomes counts, per failed record, the markers the job wrote on the retry
// topic (attempts 2) and the dead letters, as read_committed readers see them.
func outcomes(t *testing.T, e *env) (reparks, dead map[string]int) {
	t.Helper()
	reparks, dead = map[string]int{}, map[string]int{}
	for _, r := range readCommitted(t, e.c.Bootstrap(), e.topic+retry.RetrySuffix) {
		if m, err := retry.ParseMarker(r); err == nil && m.Kind == retry.KindMarker && m.Attempts == 2 {
			reparks[string(m.Value)]++
		}
	}
	for _, r := range readCommitted(t, e.c.Bootstrap(), e.topic+retry.DeadLetterSuffix) {
		if m, err := retry.ParseMarker(r); err == nil {
			dead[string(m.Value)]++
		}
	}
	return reparks, dead
}

// killedJobOutcomes writes n markers in the documented format from a plain
// client, then runs the job (records always fail, MaxAttempts 3: one
// re-park and one dead letter each) in a child process that is SIGKILLed
// three times, each within half a second of its first dead letters, and
// restarted, and lets the last one finish. It returns the outcomes
// read_committed readers see.
func killedJobOutcomes(t *testing.T, e *env, n int, exactlyOnce bool) (reparks, dead map[string]int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	writeForeignMarkers(ctx, t, e, n)
	logPath := filepath.Join(t.TempDir(), "runs.log")
	env := []string{"RETRY_BOOTSTRAP=" + strings.Join(e.c.Bootstrap(), ","), "RETRY_TOPIC=" + e.topic,
		"RETRY_LOG=" + logPath, "RETRY_MAX=3", "RETRY_COMMIT=300ms"}
	if exactlyOnce {
		env = append(env, "RETRY_EOS=1")
	}
	count := func(kind string) (n int) {
		for _, l := range readLog(t, logPath) {
			if l.kind == kind {
				n++
			}
		}
		return n
	}
	adm := kadm.NewClient(e.cl)
	dlq := e.topic + retry.DeadLetterSuffix
	// dlqEnd counts the dead letters written, committed or not.
	dlqEnd := func() (n int64) {
		ends, err := adm.ListEndOffsets(ctx, dlq)
		if err == nil {
			ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
		}
		return n
	}
	runs := func() int { return count("run") }
	for kill, after := range []time.Duration{100 * time.Millisecond, 250 * time.Millisecond, 400 * time.Millisecond} {
		job := startHelper(t, "job", env...)
		if err := job.Start(); err != nil {
			t.Fatal(err)
		}
		testkit.WaitFor(t, 30*time.Second, "the job to start", func() bool { return count("start") == kill+1 })
		// Killed while it writes dead letters, some of them not committed
		// yet (the commit interval is 300ms); a job that finds nothing
		// left to dead-letter is killed too.
		before := dlqEnd()
		for deadline := time.Now().Add(10 * time.Second); dlqEnd() < before+5 && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(after)
		if err := job.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = job.Wait()
		t.Logf("kill %d after %d handler runs", kill+1, runs())
	}
	last := startHelper(t, "job", env...)
	if err := last.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = last.Process.Kill() }()
	testkit.WaitFor(t, 30*time.Second, "the last job to start", func() bool { return count("start") == 4 })
	rt := e.topic + retry.RetrySuffix
	testkit.WaitFor(t, 60*time.Second, "every record to be dead-lettered and the retry topic committed to its end", func() bool {
		if _, dead := outcomes(t, e); len(dead) != n {
			return false
		}
		committed, err := adm.FetchOffsets(ctx, retry.DefaultGroup(rt))
		if err != nil {
			return false
		}
		ends, err := adm.ListCommittedOffsets(ctx, rt)
		if err != nil || ends.Error() != nil {
			return false
		}
		atEnd := true
		ends.Each(func(o kadm.ListedOffset) {
			if c, ok := committed.Lookup(rt, o.Partition); o.Offset > 0 && (!ok || c.At < o.Offset-1) {
				atEnd = false // the last record may be a transaction marker
			}
		})
		return atEnd
	})
	if err := last.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := last.Wait(); err != nil {
		t.Fatalf("graceful stop of the last job: %v", err)
	}
	return outcomes(t, e)
}

// finishOutcomes waits until each of the n markers is dead-lettered, stops the job (named who)
// and returns the outcomes.
func finishOutcomes(t *testing.T, e *env, n int, who string, stop func() error) (reparks, dead map[string]int) {
	t.Helper()
	testkit.WaitFor(t, 30*time.Second, "every record to be dead-lettered", func() bool {
		_, dead := outcomes(t, e)
		return len(dead) == n
	})
	if err := stop(); err != nil {
		t.Fatalf("%s: %v", who, err)
	}
	return outcomes(t, e)
}

// wantEachOutcomeOnce checks that each of the n markers was re-parked once and dead-lettered
// once, as read_committed readers see them.
func wantEachOutcomeOnce(t *testing.T, reparks, dead map[string]int, n int) {
	t.Helper()
	for i := range n {
		v := fmt.Sprintf("r%d:-1", i)
		if reparks[v] != 1 || dead[v] != 1 {
			t.Errorf("%s: %d re-parks and %d dead letters, want 1 and 1", v, reparks[v], dead[v])
		}
	}
}

func duplicates(counts map[string]int) (dups int) {
	for _, c := range counts {
		dups += max(c-1, 0)
	}
	return dups
}

// killedJob runs killedJobOutcomes on a fresh cluster and logs the
// outcomes; it returns them, the number of markers and the cluster.
func killedJob(t *testing.T, topic string, exactlyOnce bool) (reparks, dead map[string]int, n int, e *env) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts child processes")
	}
	n = 120
	e = newEnv(t, topic, 3)
	reparks, dead = killedJobOutcomes(t, e, n, exactlyOnce)
	t.Logf("exactly once %v: %d re-parks (%d duplicates), %d dead letters (%d duplicates) for %d markers",
		exactlyOnce, len(reparks), duplicates(reparks), len(dead), duplicates(dead), n)
	return reparks, dead, n, e
}

func TestExactlyOnceJobKilledRepeatedlyWritesEachReparkAndDeadLetterOnce(t *testing.T) {
	t.Parallel()
	reparks, dead, n, e := killedJob(t, "eos", true)
	wantEachOutcomeOnce(t, reparks, dead, n)
	// What `kafkaguard dlq` lists: the committed dead letters, not those of
	// the transactions the kills aborted.
	dls, err := retry.NewDeadLetters(retry.Topic(e.topic), retry.KgoOpts(kgo.SeedBrokers(e.c.Bootstrap()...)))
	if err != nil {
		t.Fatal(err)
	}
	defer dls.Close()
	listed, err := dls.Read(t.Context(), retry.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != n {
		t.Errorf("DeadLetters.Read lists %d dead letters, want %d", len(listed), n)
	}
}

// The same run in the default, at-least-once mode: killed between writing
// outcomes and committing them, the job writes them again.
func TestAtLeastOnceJobKilledRepeatedlyDuplicatesDeadLetters(t *testing.T) {
	t.Parallel()
	reparks, dead, n, _ := killedJob(t, "alo", false)
	if len(dead) != n {
		t.Errorf("%d records dead-lettered, want %d", len(dead), n)
	}
	if duplicates(reparks)+duplicates(dead) == 0 {
		t.Errorf("no duplicate outcome: the kills did not land between an outcome and its commit")
	}
}

// Two ExactlyOnce instances share the work: the second one's arrival and the
// first one's departure rebalance the group, aborting the transactions open
// then; the markers of those transactions run again, and still every outcome
// is written once as read_committed readers see it, and counted once, in
// Stats, the metrics and the dead-letter alerts.
func TestExactlyOnceJobsRebalancingWriteEachOutcomeOnce(t *testing.T) {
	t.Parallel()
	const n = 60
	e := newEnv(t, "eosrebalance", 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	writeForeignMarkers(ctx, t, e, n)
	reg := prometheus.NewRegistry()
	metrics, err := retry.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	metricsURL := testkit.ServeMetrics(t, reg)
	var runs, deadAlerts atomic.Int64
	newJob := func(instance string) *retry.Job {
		j, err := retry.NewJob(func(context.Context, *retry.Marker) error {
			runs.Add(1)
			time.Sleep(10 * time.Millisecond)
			return errors.New("fails")
		}, retry.Topic(e.topic), e.clientOpts(), retry.RetryBackoff(fastBackoff), retry.MaxAttempts(3),
			retry.Concurrency(2), retry.CommitInterval(100*time.Millisecond), retry.ExactlyOnce(instance),
			retry.ReportMetrics(metrics), retry.OnAlert(retry.Thresholds{DeadLetters: 1}, func(a retry.Alert) {
				if a.Kind == retry.AlertDeadLetter {
					deadAlerts.Add(1)
				}
			}),
			retry.Logger(testLogger(t).With("job", instance)))
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	a, b := newJob("a"), newJob("b")
	stopA := runJob(t, a)
	testkit.WaitFor(t, 20*time.Second, "the first job to run markers", func() bool { return runs.Load() >= 20 })
	stopB := runJob(t, b)
	testkit.WaitFor(t, 20*time.Second, "more runs after the second job joined", func() bool { return runs.Load() >= 60 })
	if err := stopA(); err != nil {
		t.Fatalf("first job: %v", err)
	}
	reparks, dead := finishOutcomes(t, e, n, "second job", stopB)
	t.Logf("%d handler runs for %d markers (%d without a rerun); %d re-park and %d dead-letter duplicates",
		runs.Load(), n, 2*n, duplicates(reparks), duplicates(dead))
	wantEachOutcomeOnce(t, reparks, dead, n)
	sa, sb := a.Stats(), b.Stats()
	if r, d := sa.Reparked+sb.Reparked, sa.DeadLettered+sb.DeadLettered; r != n || d != n {
		t.Errorf("Stats count %d re-parks and %d dead letters (a %+v, b %+v), want %d and %d", r, d, sa, sb, n, n)
	}
	got := scrape(t, metricsURL)
	for _, name := range []string{"kafkaguard_retry_parked_total", "kafkaguard_retry_dead_lettered_total"} {
		if v := got[name+`{topic="eosrebalance"}`]; v != strconv.Itoa(n) {
			t.Errorf("%s = %q, want %d", name, v, n)
		}
	}
	if got := deadAlerts.Load(); got != n {
		t.Errorf("%d dead-letter alerts, want %d", got, n)
	}
}

// A commit whose answer is lost (the network cut right after EndTxn was sent; the coordinator
// commits it) stops the Job with an error matching produce.ErrOutcomeUnknown instead of running
// the transaction's markers again in this process; restarted, it resumes from the offsets the
// brokers hold, and every marker's outcome is written once.
func TestExactlyOnceJobWhoseCommitAnswerIsLostStopsWithOutcomeUnknown(t *testing.T) {
	t.Parallel()
	const n = 60
	e := newEnv(t, "eoslostend", 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	writeForeignMarkers(ctx, t, e, n)
	newJob := func(more ...kgo.Opt) *retry.Job {
		j, err := retry.NewJob(func(context.Context, *retry.Marker) error {
			time.Sleep(5 * time.Millisecond)
			return errors.New("fails")
		}, retry.Topic(e.topic), e.clientOpts(), retry.RetryBackoff(fastBackoff), retry.MaxAttempts(3),
			retry.Concurrency(2), retry.CommitInterval(100*time.Millisecond), retry.ExactlyOnce("a"),
			retry.KgoOpts(append([]kgo.Opt{kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond })}, more...)...),
			retry.Logger(testLogger(t)))
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	var k netcut.Dialer
	first := newJob(kgo.Dialer(k.Dial))
	errc := make(chan error, 1)
	go func() { errc <- first.Run(ctx) }()
	testkit.WaitFor(t, 20*time.Second, "the first dead letters committed", func() bool { return first.Stats().DeadLettered >= 5 })
	k.CutOnceSent(keyEndTxn)
	select {
	case err := <-errc:
		if !k.Fired() || !errors.Is(err, produce.ErrOutcomeUnknown) {
			t.Fatalf("Run: %v (cut %v); want an error matching produce.ErrOutcomeUnknown", err, k.Fired())
		}
		t.Logf("Run: %v", err)
	case <-time.After(40 * time.Second):
		t.Fatal("Run did not stop 40 s after its commit's answer was lost")
	}
	stop := runJob(t, newJob())
	reparks, dead := finishOutcomes(t, e, n, "restarted job", stop)
	wantEachOutcomeOnce(t, reparks, dead, n)
}

// keyEndTxn is EndTxn's Kafka API key.
const keyEndTxn = 26

// A job stopped while its transaction is ending leaves no transaction open:
// an open one would hold the last stable offset of every partition it wrote
// to, so that read_committed readers (the next instance of the job among
// them) would see nothing past it until the broker's transaction timeout.
func TestExactlyOnceJobStoppedMidTransactionLeavesNoneOpen(t *testing.T) {
	t.Parallel()
	const n = 30
	e := newEnv(t, "eosstopmid", 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	writeForeignMarkers(ctx, t, e, n)
	var runs atomic.Int64
	j, err := retry.NewJob(func(context.Context, *retry.Marker) error {
		runs.Add(1)
		return errors.New("fails")
	}, retry.Topic(e.topic), e.clientOpts(), retry.RetryBackoff(retry.Backoff{Initial: time.Hour, Max: time.Hour, Multiplier: 1}),
		retry.MaxAttempts(3), retry.CommitInterval(50*time.Millisecond), retry.ExactlyOnce("a"),
		retry.KgoOpts(kgo.MetadataMinAge(100*time.Millisecond)),
		retry.Logger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	// Every re-park in the retry topic stalls for a second, then is refused
	// once (the client retries it): the transaction open when the job is
	// stopped is one with records written and being flushed.
	for p := range int32(3) {
		if err := e.c.FailProduces(e.topic+retry.RetrySuffix, p, 1, kerr.NotEnoughReplicas, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	stop := runJob(t, j)
	testkit.WaitFor(t, 20*time.Second, "the job to run markers", func() bool { return runs.Load() >= 3 })
	time.Sleep(300 * time.Millisecond) // a transaction end (every 50 ms) is now waiting for the stalled writes
	if err := stop(); err != nil {
		t.Fatalf("job: %v", err)
	}
	adm := kadm.NewClient(e.cl)
	retryTopic := e.topic + retry.RetrySuffix
	testkit.WaitFor(t, 5*time.Second, "the retry topic's last stable offsets to reach its ends", func() bool {
		stable, err := adm.ListCommittedOffsets(ctx, retryTopic)
		if err != nil || stable.Error() != nil {
			return false
		}
		ends, err := adm.ListEndOffsets(ctx, retryTopic)
		if err != nil || ends.Error() != nil {
			return false
		}
		open := false
		ends.Each(func(o kadm.ListedOffset) {
			s, _ := stable.Lookup(o.Topic, o.Partition)
			if s.Offset != o.Offset {
				t.Logf("partition %d: last stable offset %d, end %d", o.Partition, s.Offset, o.Offset)
				open = true
			}
		})
		return !open
	})
}

// cancelOnWrite is a kgo hook that cancels a context once a request of key
// has been written to a broker.
type cancelOnWrite struct {
	key    int16
	cancel context.CancelFunc
}

func (h cancelOnWrite) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == h.key && err == nil {
		h.cancel()
	}
}

// A graceful stop is a graceful stop at any moment: a job stopped while it
// initializes its transactional id (here: once its InitProducerID request is
// sent) returns nil from Run, as one stopped while running does.
func TestExactlyOnceJobStoppedWhileInitializingReturnsNil(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "eosstopinit", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	j, err := retry.NewJob(func(context.Context, *retry.Marker) error { return nil },
		retry.Topic(e.topic), e.clientOpts(), retry.ExactlyOnce("a"),
		retry.KgoOpts(kgo.WithHooks(cancelOnWrite{key: 22, cancel: stop})), // 22: InitProducerID
		retry.Logger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Run(runCtx); err != nil {
		t.Fatalf("Run stopped while initializing its transactional id: %v, want nil", err)
	}
	if runCtx.Err() == nil {
		t.Fatal("the job returned without being stopped")
	}
}
