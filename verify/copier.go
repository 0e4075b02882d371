package verify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/consume"
	"github.com/kafkaguard/kafkaguard/internal/netcut"
	"github.com/kafkaguard/kafkaguard/produce"
	"github.com/kafkaguard/kafkaguard/retry"
)

// WorkloadCopier copies the produced topic to another with consume's
// exactly-once consumers, which crash and restart, and reads the copy with
// read_committed ([RunCopier]).
const WorkloadCopier WorkloadKind = "copier"

// CopierMode is how the copier workload's copiers write the output.
type CopierMode string

// The copier modes.
const (
	// CopierExactlyOnce copies with consume.NewExactlyOnce: each window's
	// outputs and input offsets are committed in one transaction.
	CopierExactlyOnce CopierMode = "exactly-once"
	// CopierAtLeastOnce copies with consume.New and a NoLoss producer: an
	// output is acknowledged before its input offset is committed, so a
	// crash copies the records in flight again (duplicates).
	CopierAtLeastOnce CopierMode = "at-least-once"
)

// ErrUnknownCopierMode is returned for a copier mode other than
// "exactly-once" and "at-least-once".
var ErrUnknownCopierMode = errors.New("verify: unknown copier mode")

// CopierModes returns the copier modes.
func CopierModes() []CopierMode { return []CopierMode{CopierExactlyOnce, CopierAtLeastOnce} }

// ParseCopierMode returns the copier mode with the given name. Case is
// ignored.
func ParseCopierMode(name string) (CopierMode, error) {
	return parseNamed(name, CopierModes(), func(m CopierMode) string { return string(m) }, ErrUnknownCopierMode)
}

// CopierConfig describes one run of the copier workload (the shape of
// Kafka's transactions system test): the producer run of Config fills the
// input topic while Copiers copiers in one group copy it to an output
// topic and crash at random (as the queue workload's consumers do: their
// connections cut, no commit, no leave) and restart with the same
// transactional id; a read_committed reader reads the output meanwhile
// and at the end.
type CopierConfig struct {
	Config // Config is the producer side (the input) and the fault schedule.

	// Mode is how the copiers write (default CopierExactlyOnce).
	Mode CopierMode
	// Order is the copiers' order mode (default consume.KeyOrder).
	Order consume.Order
	// Copiers is the number of group members (default DefaultConsumers).
	Copiers int
	// Crashes is how many times a copier crashes while records are
	// produced (default DefaultCrashes; negative means none).
	Crashes int
	// Seed seeds the crash plan and the handlers' times.
	Seed uint64
	// SessionTimeout is the copiers' session timeout (default
	// DefaultSessionTimeout).
	SessionTimeout time.Duration
	// TxnInterval is the exactly-once copiers' transaction window (default
	// consume.DefaultTxnInterval); CommitInterval the at-least-once
	// copiers' commit interval (default DefaultCommitInterval).
	TxnInterval, CommitInterval time.Duration
	// HandleTime bounds the time a copier takes per record (default
	// DefaultHandleTime; negative means none).
	HandleTime time.Duration
	// Output is the output topic (default Topic + "-out").
	Output string
}

// CopierResult is the outcome of one copier run: the producer run's
// Result (the input) and the copy's judgement.
type CopierResult struct {
	Result
	Workload WorkloadKind   `json:"workload"` // Workload is WorkloadCopier.
	Mode     CopierMode     `json:"mode"`
	Group    string         `json:"group"`  // Group is the copiers' group.
	Output   string         `json:"output"` // Output is the output topic.
	Seed     uint64         `json:"seed"`   // Seed is CopierConfig.Seed.
	Copier   CopierReport   `json:"copier"` // Copier judges the output.
	History  *CopierHistory `json:"-"`
}

// Err returns nil if the producer kept its preset's promise ([Result.Err])
// and the copy is exact ([CopierReport.Err]).
func (r CopierResult) Err() error {
	return r.Result.errWith(r.Copier.Err(), fmt.Sprintf("copier (%s)", r.Mode))
}

// Verdict sums the run up: the producer's verdict, or "FAIL" with the
// copy's anomalies.
func (r CopierResult) Verdict() string { return r.Result.verdictWith(r.Copier.Findings) }

// outputDrainTimeout bounds the wait for the output reader to reach the
// output's end once the copiers stopped.
const outputDrainTimeout = 20 * time.Second

// copierTxnTimeout is the exactly-once copiers' least transaction timeout.
const copierTxnTimeout = 3 * time.Second

// RunCopier runs the copier workload: what [Run] does to the input topic,
// while cfg.Copiers copiers copy it to the output topic, crashing and
// restarting at random (seeded by cfg.Seed), and reader 0 reads the output
// with read_committed from the start. Once the input is read back the
// copiers run until they have copied and committed all of it, then stop;
// reader 0 reads on to the output's end, reader 1 reads the whole output
// again with read_committed, the output's log is read read_uncommitted
// with its transaction markers, and [CheckCopier] judges the history.
// Errors are as Run's.
func RunCopier(ctx context.Context, cfg CopierConfig) (CopierResult, error) {
	if cfg.Mode == "" {
		cfg.Mode = CopierExactlyOnce
	}
	if _, err := ParseCopierMode(string(cfg.Mode)); err != nil {
		return CopierResult{}, err
	}
	if cfg.Topic == "" {
		cfg.Topic = fmt.Sprintf("kafkaguard-copier-%s-%s", cfg.Mode, strconv.FormatInt(time.Now().UnixNano(), 36))
	}
	if cfg.Output == "" {
		cfg.Output = cfg.Topic + "-out"
	}
	if cfg.TxnInterval == 0 {
		cfg.TxnInterval = consume.DefaultTxnInterval
	}
	c := &copierRun{cfg: cfg}
	qc := QueueConfig{Config: cfg.Config, Order: cfg.Order, Consumers: cfg.Copiers, Crashes: cfg.Crashes, Seed: cfg.Seed,
		SessionTimeout: cfg.SessionTimeout, CommitInterval: cfg.CommitInterval, HandleTime: cfg.HandleTime, newMember: c.newMember}
	qc, err := qc.normalize()
	if err != nil {
		return CopierResult{}, err
	}
	c.q = &queueRun{cfg: qc, group: qc.Topic + "-group", t0: time.Now(), rng: newCrashRand(cfg.Seed), halt: make(chan struct{})}
	defer c.stop()
	res, err := run(ctx, qc.Config, c)
	out := CopierResult{Result: res, Workload: WorkloadCopier, Mode: cfg.Mode, Group: c.q.group, Output: cfg.Output, Seed: cfg.Seed}
	if err != nil {
		return out, err
	}
	h := c.history(res)
	out.History = &h
	out.Copier = CheckCopier(h)
	return out, nil
}

// copierRun is the copier side of a copier run (a sideWorkload): the
// copiers, run as a queue run's members, and the output's readers.
type copierRun struct {
	cfg CopierConfig
	q   *queueRun

	adm      *kgo.Client
	stopRead context.CancelFunc
	reading  sync.WaitGroup
	mu       sync.Mutex
	polls    []Poll          // reader 0's, then reader 1's
	next     map[int32]int64 // reader 0's position
	log      []LogEntry
	stopOnce sync.Once
}

func (c *copierRun) start(ctx context.Context, topic string) error {
	adm, err := c.q.admin()
	if err != nil {
		return err
	}
	c.adm = adm
	oc := c.cfg.Config
	oc.Topic = c.cfg.Output
	oc.Partitions, oc.ReplicationFactor = c.q.cfg.Partitions, c.q.cfg.ReplicationFactor
	kadmCl := kadm.NewClient(adm)
	if err := createTopic(ctx, kadmCl, oc); err != nil {
		return err
	}
	if err := waitHealthy(ctx, kadmCl, oc.Topic, healthyTimeout); err != nil {
		return err
	}
	rcl, err := kgo.NewClient(c.cfg.clientOpts(kgo.ConsumeTopics(c.cfg.Output), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(100*time.Millisecond),
		kgo.MetadataMinAge(100*time.Millisecond))...)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	rctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	c.stopRead = stop
	c.next = map[int32]int64{}
	c.reading.Go(func() {
		defer rcl.Close()
		for rctx.Err() == nil {
			fs := rcl.PollFetches(rctx)
			poll := Poll{Reader: 0, At: c.q.since()}
			fs.EachRecord(func(r *kgo.Record) {
				c.mu.Lock()
				c.next[r.Partition] = r.Offset + 1
				c.mu.Unlock()
				if v, err := ParseValue(r.Value); err == nil {
					poll.Records = append(poll.Records, Record{Partition: r.Partition, Offset: r.Offset, Value: v})
				}
			})
			if len(poll.Records) > 0 {
				c.mu.Lock()
				c.polls = append(c.polls, poll)
				c.mu.Unlock()
			}
		}
	})
	return c.q.start(ctx, topic)
}

// finish lets the copiers copy and commit the whole input and stops them,
// then reads the output to its end: reader 0 catches up, reader 1 reads it
// all with read_committed, and the log is read with its markers.
func (c *copierRun) finish(ctx context.Context, read []Record) error {
	if err := c.q.finish(ctx, read); err != nil {
		return err
	}
	adm := kadm.NewClient(c.adm)
	ends, err := stableEndOffsets(ctx, adm, c.cfg.Output, settleTime(produce.ExactlyOnce))
	if err != nil {
		return err
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { want[o.Partition] = o.Offset })
	// Reader 1 first: the last record it returns of each partition is
	// where reader 0 must get to (what follows is markers and aborted
	// records, which a read_committed reader never returns).
	_, polls, err := c.readOutput(ctx, want, true)
	if err != nil {
		return err
	}
	last := map[int32]int64{}
	for _, p := range polls {
		for _, r := range p.Records {
			last[r.Partition] = max(last[r.Partition], r.Offset+1)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, outputDrainTimeout)
	defer cancel()
	for !c.readTo(last) {
		select {
		case <-wctx.Done():
			c.q.cfg.Logger.Warn("verify: the output reader did not read what a second reader read", "output", c.cfg.Output,
				"after", outputDrainTimeout, "last", last)
			goto stopped
		case <-time.After(commitPollEvery):
		}
	}
stopped:
	c.stopRead()
	c.reading.Wait()
	log, _, err := c.readOutput(ctx, want, false)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.polls = append(c.polls, polls...)
	c.log = log
	return nil
}

// readTo reports whether reader 0 read up to last (the offset after the
// last record to read, per partition).
func (c *copierRun) readTo(last map[int32]int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, end := range last {
		if c.next[p] < end {
			return false
		}
	}
	return true
}

// readOutput reads the output from its start to want, keeping the
// transaction markers: with read_committed as reader 1's polls, else as the
// log.
func (c *copierRun) readOutput(ctx context.Context, want map[int32]int64, committed bool) ([]LogEntry, []Poll, error) {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	parts := map[int32]kgo.Offset{}
	left := map[int32]int64{}
	for p, end := range want {
		if end > 0 {
			parts[p], left[p] = kgo.NewOffset().AtStart(), end
		}
	}
	if len(parts) == 0 {
		return nil, nil, nil
	}
	iso := kgo.ReadUncommitted()
	if committed {
		iso = kgo.ReadCommitted()
	}
	cl, err := kgo.NewClient(c.cfg.clientOpts(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{c.cfg.Output: parts}),
		kgo.FetchIsolationLevel(iso), kgo.KeepControlRecords(), kgo.FetchMaxWait(100*time.Millisecond),
		kgo.MetadataMinAge(100*time.Millisecond))...)
	if err != nil {
		return nil, nil, fmt.Errorf("verify: %w", err)
	}
	defer cl.Close()
	var log []LogEntry
	var polls []Poll
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, nil, fmt.Errorf("verify: reading %s: %v left of %v: %w", c.cfg.Output, left, want, err)
		}
		poll := Poll{Reader: 1, At: c.q.since()}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset+1 >= left[r.Partition] {
				delete(left, r.Partition)
			}
			e := LogEntry{Partition: r.Partition, Offset: r.Offset, ProducerID: r.ProducerID, Transactional: r.Attrs.IsTransactional()}
			if r.Attrs.IsControl() {
				e.Marker = MarkerAbort
				if len(r.Key) >= 4 && r.Key[3] == 1 { // version int16, type int16: 0 abort, 1 commit
					e.Marker = MarkerCommit
				}
				log = append(log, e)
				return
			}
			v, err := ParseValue(r.Value)
			if err != nil {
				return
			}
			e.Value = v
			log = append(log, e)
			poll.Records = append(poll.Records, Record{Partition: r.Partition, Offset: r.Offset, Value: v})
		})
		if len(poll.Records) > 0 {
			polls = append(polls, poll)
		}
	}
	return log, polls, nil
}

// stop stops the copiers and the reader; it may be called more than once.
func (c *copierRun) stop() {
	c.stopOnce.Do(func() {
		_ = c.q.stop()
		if c.stopRead != nil {
			c.stopRead()
		}
		c.reading.Wait()
		if c.adm != nil {
			c.adm.Close()
		}
	})
}

// history is the run's copier history, the input's acknowledgements from
// res.
func (c *copierRun) history(res Result) CopierHistory {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := CopierHistory{Seed: res.Seed, Polls: slices.Clone(c.polls), Log: slices.Clone(c.log), Faults: res.FaultEvents}
	for _, a := range res.Acked {
		// The input offset says nothing of the output's: -1.
		h.Sends = append(h.Sends, Send{Value: a.Value, Acked: true, Partition: a.Partition, Offset: -1})
	}
	h.Crashes = c.q.history().Crashes
	return h
}

// copierAttempts bounds the runs of one record by an at-least-once copier:
// enough for a write to outlast any fault of a run (at most 200 ms apart).
const copierAttempts = 1000

// newMember builds a copier: an exactly-once consumer, or an
// at-least-once one with a NoLoss producer, on a network a crash cuts.
func (c *copierRun) newMember(mc memberConfig) (member, error) {
	m := &consumeMember{mc: mc, net: &netcut.Dialer{}, done: make(chan struct{}), exit: make(chan struct{})}
	clCtx, cancelCl := context.WithCancel(context.Background())
	m.cancelCl = cancelCl
	handle := mc.handler(&m.dead)
	opts := []consume.Opt{consume.OrderBy(mc.cfg.Order), consume.DrainTimeout(5 * time.Second),
		consume.Logger(mc.cfg.Logger.With("copier", mc.name))}
	fail := func(err error) (member, error) {
		cancelCl()
		return nil, fmt.Errorf("verify: copier %s: %w", mc.name, err)
	}
	var err error
	switch c.cfg.Mode {
	case CopierExactlyOnce:
		eo := []consume.ExactlyOnceOpt{consume.KgoOpts(append(mc.clientOpts(m.net, clCtx, &m.dead),
			kgo.TransactionalID(fmt.Sprintf("%s-copier-%d", mc.group, mc.slot)),
			// A restarted copier fences its crashed predecessor's open
			// transaction only once it produces; until then the broker
			// aborts it at this timeout, and the output's readers wait.
			kgo.TransactionTimeout(max(copierTxnTimeout, mc.cfg.SessionTimeout)),
			kgo.DefaultProduceTopic(c.cfg.Output))...), consume.TxnInterval(c.cfg.TxnInterval)}
		for _, o := range opts {
			eo = append(eo, o)
		}
		m.c, err = consume.NewExactlyOnce(func(ctx context.Context, r *kgo.Record, out *consume.Output) error {
			if err := handle(ctx, r); err != nil {
				return err
			}
			out.Produce(&kgo.Record{Key: r.Key, Value: r.Value})
			return nil
		}, eo...)
		if err != nil {
			return fail(err)
		}
	default:
		m.p, err = produce.New(clCtx, produce.NoLoss, mc.cfg.clientOpts(kgo.Dialer(m.net.Dial), kgo.WithContext(clCtx),
			kgo.DefaultProduceTopic(c.cfg.Output), kgo.WithLogger(slogKgo{mc.cfg.Logger.With("copier", mc.name)}))...)
		if err != nil {
			return fail(err)
		}
		hooks := consume.NewHooks()
		cl, err := kgo.NewClient(append(mc.clientOpts(m.net, clCtx, &m.dead), hooks.KgoOpts()...)...)
		if err != nil {
			m.p.Close(clCtx)
			return fail(err)
		}
		m.cl = cl
		// A copy whose write failed runs again until it is written, as an
		// at-least-once copier must: without Retries a failed record would
		// block its key for good. A write can fail though its own context is
		// live: when a send of the same partition abandoned at a revocation
		// fails, franz-go fails the records buffered behind it too.
		co := []consume.ConsumerOpt{consume.Client(cl, hooks), consume.CommitInterval(mc.cfg.CommitInterval),
			consume.Retries(consume.RetryPolicy{Attempts: copierAttempts,
				Backoff: retry.Backoff{Initial: 10 * time.Millisecond, Max: 200 * time.Millisecond, Multiplier: 2, Jitter: 0.2}})}
		for _, o := range opts {
			co = append(co, o)
		}
		m.c, err = consume.New(func(ctx context.Context, r *kgo.Record) error {
			// A crash ends the send at once, as it ends a killed process's.
			sctx, cancel := context.WithCancel(ctx)
			stop := context.AfterFunc(clCtx, cancel)
			err := m.p.Send(sctx, &kgo.Record{Key: r.Key, Value: r.Value})
			stop()
			cancel()
			if err != nil {
				return err
			}
			return handle(ctx, r)
		}, co...)
		if err != nil {
			cl.Close()
			m.p.Close(clCtx)
			return fail(err)
		}
	}
	return m, nil
}

// slogKgo is a kgo.Logger writing to a slog.Logger: the at-least-once
// copier's producer reports there what a crash abandons, not to
// slog.Default. kgo's own messages pass at error level only.
type slogKgo struct{ l *slog.Logger }

func (s slogKgo) Level() kgo.LogLevel { return kgo.LogLevelError }

func (s slogKgo) Log(level kgo.LogLevel, msg string, kv ...any) {
	sl := slog.LevelError
	switch level {
	case kgo.LogLevelWarn:
		sl = slog.LevelWarn
	case kgo.LogLevelInfo:
		sl = slog.LevelInfo
	case kgo.LogLevelDebug:
		sl = slog.LevelDebug
	}
	s.l.Log(context.Background(), sl, msg, kv...)
}
