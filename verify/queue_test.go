package verify

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/consume"
	"github.com/kafkaguard/kafkaguard/internal/netcut"
	"github.com/kafkaguard/kafkaguard/kafkatest"
	"github.com/kafkaguard/kafkaguard/produce"
)

// queueTestConfig is a small, fast queue run against c.
func queueTestConfig(c *kafkatest.Cluster, order consume.Order, fault Fault, seed uint64) QueueConfig {
	return QueueConfig{
		Config: Config{Preset: produce.NoLoss, Fault: fault, Records: 800, Keys: 8, Rate: 800, Partitions: 3,
			Bootstrap: c.Bootstrap(), Faults: ClusterFaults(c)},
		Order: order, Consumers: 3, Crashes: 3, Seed: seed, SessionTimeout: 500 * time.Millisecond,
	}
}

// TestRunQueueUnderCrashesAndFaults runs consume's consumers in each order mode while members
// crash (no commit, no leave) and a broker fault strikes: every acknowledged record is handled,
// no commit passes an unhandled record, keys keep their order, and records run again only when
// they were in flight at a crash. The crashes must have cost re-runs, or they hit nothing.
func TestRunQueueUnderCrashesAndFaults(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t, kafkatest.Brokers(3))
	for i, tt := range []struct {
		order consume.Order
		fault Fault
	}{
		{consume.KeyOrder, FaultKillLeader},
		{consume.PartitionOrder, FaultNone},
		{consume.Unordered, FaultIsolateLeader},
	} {
		t.Run(tt.order.String()+"/"+string(tt.fault), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cfg := queueTestConfig(c, tt.order, tt.fault, uint64(i+1))
			// 1600 records (a 2 s window at 800/s): with 800, a loaded machine could let the
			// members poll every record before the first crash's rebalance ended, and no
			// delivery came in a second generation.
			cfg.Records = 1600
			res, err := RunQueue(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			q := res.Queue
			t.Logf("%s: acked %d, handled %d (%d distinct, %d again), indeterminate %d, crashes %d, commits observed %d, %v",
				res.Topic, q.Acked, q.Handled, q.Distinct, q.Rehandled, q.Indeterminate, q.Crashes, len(res.History.Commits), res.Duration)
			if err := res.Err(); err != nil {
				t.Fatal(err)
			}
			if q.Acked == 0 || q.Distinct < q.Acked {
				t.Fatalf("acked %d, handled %d distinct records", q.Acked, q.Distinct)
			}
			if q.Crashes != 3 {
				t.Errorf("%d crashes, want 3", q.Crashes)
			}
			// The members' polls were recorded (the poll order was checked) across rebalances.
			polled, gens := map[position]bool{}, map[int32]bool{}
			for _, d := range res.History.Deliveries {
				polled[position{d.Partition, d.Offset}], gens[d.Generation] = true, true
			}
			if len(polled) < q.Acked || len(gens) < 2 {
				t.Errorf("%d records polled in %d generations; want every acknowledged one (%d), across rebalances", len(polled), len(gens), q.Acked)
			}
		})
	}
}

// TestRunQueueCommitBeforeHandlingViolatesAtLeastOnce is the unsafe configuration next to the
// safe one: a plain franz-go group consumer with auto-commit, which commits what it polled
// before handling it, crashed mid-batch under the same seeds as TestRunQueueUnderCrashesAndFaults.
// The checker must report the at-least-once violation (and any record it never handled).
func TestRunQueueCommitBeforeHandlingViolatesAtLeastOnce(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t, kafkatest.Brokers(3))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := queueTestConfig(c, consume.PartitionOrder, FaultNone, 2)
	cfg.HandleTime = 15 * time.Millisecond // the consumers fall behind: batches are long, a crash lands mid-batch
	cfg.newMember = newCommitFirstMember
	res, err := RunQueue(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	q := res.Queue
	t.Logf("%s: acked %d, handled %d (%d distinct, %d again), crashes %d; %v", res.Topic, q.Acked, q.Handled,
		q.Distinct, q.Rehandled, q.Crashes, q.Err())
	if n := q.Count(AtLeastOnceViolation); n == 0 {
		t.Fatalf("no %s reported for a consumer that commits before handling and crashed %d times", AtLeastOnceViolation, q.Crashes)
	}
	// Whether a crash also leaves records unhandled depends on timing (a later member may still
	// get them from its own fetches); when it does, each must be named.
	if got, want := q.Count(Unseen), q.Acked-q.Distinct; got != want {
		t.Errorf("%s: %d, want %d (acked %d, handled %d distinct)", Unseen, got, want, q.Acked, q.Distinct)
	}
	if !errors.Is(res.Err(), ErrQueueAnomaly) {
		t.Errorf("Err() = %v, want ErrQueueAnomaly", res.Err())
	}
	if v := res.Verdict(); !strings.HasPrefix(v, "FAIL") || !strings.Contains(v, string(AtLeastOnceViolation)) {
		t.Errorf("Verdict() = %q", v)
	}
}

// commitFirstMember is the unsafe consumer: it commits every batch it polled, then handles it
// record by record (what auto-commit does at a bad moment, every time).
type commitFirstMember struct {
	mc       memberConfig
	cl       *kgo.Client
	net      *netcut.Dialer
	dead     atomic.Bool
	cancelCl context.CancelFunc
	stopping atomic.Bool
	done     chan struct{}
	once     sync.Once
}

func newCommitFirstMember(mc memberConfig) (member, error) {
	m := &commitFirstMember{mc: mc, net: &netcut.Dialer{}, done: make(chan struct{})}
	clCtx, cancel := context.WithCancel(context.Background())
	m.cancelCl = cancel
	cl, err := kgo.NewClient(append(mc.clientOpts(m.net, clCtx, &m.dead), kgo.DisableAutoCommit())...)
	if err != nil {
		cancel()
		return nil, err
	}
	m.cl = cl
	return m, nil
}

func (m *commitFirstMember) name() string { return m.mc.name }

func (m *commitFirstMember) start(context.Context) {
	handle := m.mc.handler(&m.dead)
	go func() {
		defer close(m.done)
		for !m.stopping.Load() {
			pctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			fs := m.cl.PollRecords(pctx, 100)
			cancel()
			if fs.IsClientClosed() {
				return
			}
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = m.cl.CommitRecords(cctx, fs.Records()...)
			cancel()
			for _, r := range fs.Records() {
				if m.dead.Load() {
					return // the crash lands mid-batch
				}
				_ = handle(context.Background(), r)
			}
		}
	}()
}

func (m *commitFirstMember) crash() {
	m.net.Cut()
	m.dead.Store(true)
	m.cancelCl()
}

func (m *commitFirstMember) close() { m.shutdown() }

func (m *commitFirstMember) exited() <-chan struct{} { return nil } // it stops only when told

func (m *commitFirstMember) shutdown() {
	m.once.Do(func() {
		m.stopping.Store(true)
		<-m.done
		m.cl.Close()
		m.cancelCl()
	})
}

// TestQueueCrashNeitherCommitsNorLeaves checks that a crash is what it simulates: right after
// it the dead member is still in the group (no LeaveGroup), the group drops it only when its
// session times out, and nothing was committed in between; a member closed cleanly leaves at
// once.
func TestQueueCrashNeitherCommitsNorLeaves(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t, kafkatest.Brokers(3))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const topic = "crash"
	if err := c.CreateTopic(ctx, topic, 1, 3, nil); err != nil {
		t.Fatal(err)
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	var rs []*kgo.Record
	for _, v := range Workload(300, 1) {
		rs = append(rs, &kgo.Record{Key: []byte(v.RecordKey()), Value: []byte(v.String())})
	}
	if err := prod.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(prod)
	committed := func(group string) int64 {
		offs, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			t.Fatal(err)
		}
		o, _ := offs.Lookup(topic, 0)
		return o.At
	}
	members := func(group string) int {
		gs, err := adm.DescribeGroups(ctx, group)
		if err != nil {
			t.Fatal(err)
		}
		return len(gs[group].Members)
	}
	newMember := func(group string) (member, *atomic.Int64) {
		var handled atomic.Int64
		t0 := time.Now()
		m, err := newConsumeMember(memberConfig{name: group + ".0", group: group, handleTime: 5 * time.Millisecond,
			cfg:   QueueConfig{Config: Config{Bootstrap: c.Bootstrap(), Topic: topic, Logger: slog.New(slog.DiscardHandler)}, Order: consume.KeyOrder, SessionTimeout: 2 * time.Second, CommitInterval: 20 * time.Millisecond},
			since: func() time.Duration { return time.Since(t0) }, record: func(Handle) { handled.Add(1) }})
		if err != nil {
			t.Fatal(err)
		}
		m.start(ctx)
		return m, &handled
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("waiting for %s: %v", what, ctx.Err())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	m, handled := newMember("crashed")
	waitFor("a commit", func() bool { return committed("crashed") > 0 })
	// A second commit: the member is past its first assignment and heartbeating, so its
	// session, from here, runs from a heartbeat at most one interval before the crash.
	first := committed("crashed")
	waitFor("a second commit", func() bool { return committed("crashed") > first })
	m.crash()
	crashedAt := time.Now()
	defer m.close()
	// A commit the member wrote before its connections were cut may still
	// be applied after it (the broker reads what reached its socket): the
	// offset at the crash is the one that then holds still, 100 ms apart
	// three times. Nothing the dead member does can move it afterwards.
	atCrash := committed("crashed")
	for still := 0; still < 2; {
		time.Sleep(100 * time.Millisecond)
		if now := committed("crashed"); now != atCrash {
			atCrash, still = now, 0
		} else {
			still++
		}
	}
	if n := handled.Load(); atCrash > n || n >= 300 {
		t.Fatalf("committed %d with %d of 300 handled at the crash; want the crash mid-way, the commit at most what was handled", atCrash, n)
	}
	if n := members("crashed"); n != 1 {
		t.Fatalf("right after the crash the group has %d members, want the dead one still there (a crash sends no LeaveGroup)", n)
	}
	waitFor("the session to time out", func() bool { return members("crashed") == 0 })
	// The session runs from the member's last heartbeat, which may be a while before the
	// crash (franz-go pauses heartbeats around its commits and assignment callbacks), so
	// only a departure well within a heartbeat round trip of the crash says LeaveGroup.
	if gone := time.Since(crashedAt); gone < 300*time.Millisecond {
		t.Errorf("the dead member left %v after the crash: a LeaveGroup, not a session timeout", gone)
	}
	if got := committed("crashed"); got != atCrash {
		t.Errorf("committed offset moved from %d to %d after the crash", atCrash, got)
	}

	m, _ = newMember("closed")
	waitFor("a commit", func() bool { return committed("closed") > 0 })
	m.close()
	if n := members("closed"); n != 0 {
		t.Errorf("right after a clean close the group has %d members, want none (it leaves)", n)
	}
}

// TestCrashPlanFallsWithinTheProduceWindow checks the crash plan's
// promise, for many seeds: every crash and its restart happen while the
// workload is produced, one after the other, with no slot beyond the
// group's. A crash after the window would only delay the run's end,
// waiting for a session to time out after the last record was sent.
func TestCrashPlanFallsWithinTheProduceWindow(t *testing.T) {
	const window = 2 * time.Second // the default 2000 records at 1000/s
	for seed := range uint64(1000) {
		for _, n := range []int{1, 3, 10} {
			plan := crashPlan(newCrashRand(seed), n, 3, window)
			if len(plan) != n {
				t.Fatalf("seed %d: %d crashes planned, want %d", seed, len(plan), n)
			}
			var prev time.Duration
			for i, c := range plan {
				if c.At < prev || c.Down < 0 || c.Down >= maxCrashDown || c.Slot < 0 || c.Slot >= 3 {
					t.Fatalf("seed %d, %d crashes: crash %d %+v (previous restart at %v)", seed, n, i, c, prev)
				}
				if c.At+c.Down > window {
					t.Fatalf("seed %d, %d crashes: crash %d at %v restarts at %v, after the %v produce window", seed, n, i, c.At, c.At+c.Down, window)
				}
				prev = c.At + c.Down
			}
		}
	}
}

// TestQueueHandlerTakesItsDrawnTimeOnAverage gives the handler a clock
// that, like Go's timers on a loaded machine, never sleeps less than a
// millisecond: 2000 records of one key and partition, each drawn a time up
// to 1 ms, must take their drawn times in all (within a millisecond), not
// a millisecond each.
func TestQueueHandlerTakesItsDrawnTimeOnAverage(t *testing.T) {
	t.Parallel()
	var slept time.Duration
	mc := memberConfig{handleTime: time.Millisecond, seed: 3,
		since: func() time.Duration { return 0 }, record: func(Handle) {},
		sleep: func(_ context.Context, d time.Duration) (time.Duration, error) {
			took := max(d, time.Millisecond)
			slept += took
			return took, nil
		}}
	handle := mc.handler(new(atomic.Bool))
	r := &kgo.Record{Key: []byte("k0"), Value: []byte(Value{Key: 0, Seq: 0}.String())}
	for range 2000 {
		if err := handle(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	// The same draws: the handler's random source, seeded as above.
	rng := rand.New(rand.NewPCG(3, 1))
	var drawn time.Duration
	for range 2000 {
		drawn += time.Duration(rng.Int64N(int64(time.Millisecond)))
	}
	if slept > drawn+time.Millisecond || slept < drawn-time.Millisecond {
		t.Fatalf("2000 records slept %v in all, drawn %v: want the drawn time within 1 ms", slept, drawn)
	}
}
