package verify

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/consume"
	"github.com/kafkaguard/kafkaguard/internal/netcut"
	"github.com/kafkaguard/kafkaguard/ordering"
	"github.com/kafkaguard/kafkaguard/produce"
)

// WorkloadKind names what a verify run exercises (the records themselves
// are [Workload]'s).
type WorkloadKind string

// The workloads.
const (
	// WorkloadProducer produces under faults and reads the topic back
	// ([Run]).
	WorkloadProducer WorkloadKind = "producer"
	// WorkloadQueue also consumes the topic while it is produced, with
	// consumers of package consume in one group that crash and restart
	// ([RunQueue]).
	WorkloadQueue WorkloadKind = "queue"
)

// ErrUnknownWorkload is returned for a workload name other than "producer",
// "queue" and "copier".
var ErrUnknownWorkload = errors.New("verify: unknown workload")

// ParseWorkloadKind returns the workload kind with the given name,
// "producer", "queue" or "copier" ([WorkloadCopier]). Case is ignored.
func ParseWorkloadKind(name string) (WorkloadKind, error) {
	return parseNamed(name, []WorkloadKind{WorkloadProducer, WorkloadQueue, WorkloadCopier}, func(w WorkloadKind) string { return string(w) }, ErrUnknownWorkload)
}

// Defaults of [QueueConfig].
const (
	DefaultConsumers      = 3
	DefaultCrashes        = 3
	DefaultSessionTimeout = 6 * time.Second // Kafka's group.min.session.timeout.ms
	DefaultCommitInterval = 50 * time.Millisecond
	// DefaultHandleTime bounds the random time a handler takes per record,
	// so that crashes find records in flight.
	DefaultHandleTime = time.Millisecond
)

// QueueConfig describes one run of the queue workload: the producer run of
// Config, and consumers built with package consume, in one group, that
// handle the topic while it is produced and the fault schedule runs.
type QueueConfig struct {
	Config // Config is the producer side and the fault schedule.

	// Order is the consumers' order mode (default consume.KeyOrder).
	Order consume.Order
	// Consumers is the number of group members (default DefaultConsumers).
	Consumers int
	// Crashes is how many times a consumer crashes while records are
	// produced (default DefaultCrashes; negative means none). A crash
	// drops the member as a dead process would: its connections are cut
	// first, so it commits nothing more and does not leave the group; the
	// group sees it go only when its session times out. It restarts as a
	// new member a moment later.
	Crashes int
	// Seed seeds the crash times, the crashed members and the handlers'
	// times; the same seed gives the same crash plan.
	Seed uint64
	// SessionTimeout is the members' session timeout (default
	// DefaultSessionTimeout, the least Kafka accepts; the bundled cluster
	// accepts 100 ms and up): a crashed member's partitions wait that long.
	SessionTimeout time.Duration
	// CommitInterval is the consumers' commit interval (default
	// DefaultCommitInterval).
	CommitInterval time.Duration
	// HandleTime bounds the time a handler takes per record (default
	// DefaultHandleTime; negative means none).
	HandleTime time.Duration

	// newMember, if set, replaces the consume consumer (tests build an
	// unsafe one with it).
	newMember func(m memberConfig) (member, error)
}

func (cfg QueueConfig) normalize() (QueueConfig, error) {
	if cfg.Consumers == 0 {
		cfg.Consumers = DefaultConsumers
	}
	if cfg.Crashes == 0 {
		cfg.Crashes = DefaultCrashes
	}
	if cfg.SessionTimeout == 0 {
		cfg.SessionTimeout = DefaultSessionTimeout
	}
	if cfg.CommitInterval == 0 {
		cfg.CommitInterval = DefaultCommitInterval
	}
	if cfg.HandleTime == 0 {
		cfg.HandleTime = DefaultHandleTime
	}
	errs := []error{checkOrder(cfg.Order)}
	if cfg.Consumers < 0 {
		errs = append(errs, fmt.Errorf("verify: Consumers must be positive, got %d", cfg.Consumers))
	}
	if cfg.SessionTimeout < 0 || cfg.CommitInterval < 0 {
		errs = append(errs, fmt.Errorf("verify: SessionTimeout %v and CommitInterval %v must be positive", cfg.SessionTimeout, cfg.CommitInterval))
	}
	if cfg.Topic == "" {
		cfg.Topic = fmt.Sprintf("kafkaguard-queue-%s-%s-%s", strings.ToLower(cfg.Preset.String()), cfg.Order,
			strconv.FormatInt(time.Now().UnixNano(), 36))
	}
	c, err := cfg.Config.normalize()
	cfg.Config = c
	return cfg, errors.Join(append(errs, err)...)
}

// checkOrder returns an error for an order mode consume does not know.
func checkOrder(o consume.Order) error {
	if o < consume.KeyOrder || o > consume.Unordered {
		return fmt.Errorf("verify: Order: unknown order %d", int(o))
	}
	return nil
}

// QueueResult is the outcome of one queue run: the producer run's Result
// (whose Report judges the log read back) and the consumers' history and
// its judgement.
type QueueResult struct {
	Result
	Workload WorkloadKind  `json:"workload"` // Workload is WorkloadQueue.
	Order    string        `json:"order"`    // Order is the consumers' order mode.
	Group    string        `json:"group"`    // Group is the consumers' group.
	Seed     uint64        `json:"seed"`     // Seed is QueueConfig.Seed.
	Queue    QueueReport   `json:"queue"`    // Queue judges the consumers' history.
	History  *QueueHistory `json:"-"`        // History is what the consumers did.
}

// Err returns nil if the producer kept its preset's promise ([Result.Err])
// and the consumers showed no anomaly ([QueueReport.Err]).
func (r QueueResult) Err() error {
	return r.Result.errWith(r.Queue.Err(), fmt.Sprintf("queue (%s)", r.Order))
}

// Verdict sums the run up: the producer's verdict, or "FAIL" with the
// consumers' anomalies.
func (r QueueResult) Verdict() string { return r.Result.verdictWith(r.Queue.Findings) }

// errWith joins the producer's broken promise ([Result.Err]) and side's,
// the error of the consumers' side named by what.
func (r Result) errWith(side error, what string) error {
	var errs []error
	if err := r.Err(); err != nil {
		errs = append(errs, err)
	}
	if side != nil {
		errs = append(errs, fmt.Errorf("verify: %s under %s: %w", what, r.Fault, side))
	}
	return errors.Join(errs...)
}

// verdictWith is the producer's verdict, or "FAIL" with the anomalies
// found beside it (indeterminate records left out).
func (r Result) verdictWith(found Anomalies) string {
	v := r.Verdict()
	var names []string
	for _, f := range found {
		if f.Kind != Indeterminate {
			names = append(names, string(f.Kind))
		}
	}
	if len(names) == 0 {
		return v
	}
	if strings.HasPrefix(v, "FAIL: ") {
		return v + ", " + strings.Join(names, ", ")
	}
	return "FAIL: " + strings.Join(names, ", ")
}

// Timing of RunQueue's waits.
const (
	queueDrainTimeout = 60 * time.Second // for the consumers to handle and commit the whole log
	commitPollEvery   = 20 * time.Millisecond
	quietAfterCommits = 500 * time.Millisecond // with the commits at the end, no handle for this long: done
)

// RunQueue runs the queue workload: what [Run] does, while cfg.Consumers
// consumers of package consume, in one group, handle the topic and crash
// and restart at random (seeded by cfg.Seed). Every handled record is
// recorded, with the group's committed offsets as they move; once the
// topic is read back the consumers run until they have handled and
// committed all of it, then stop, and [CheckQueue] judges the history.
// Errors are as Run's.
func RunQueue(ctx context.Context, cfg QueueConfig) (QueueResult, error) {
	rs, err := RunQueues(ctx, cfg, []QueueGroup{{Order: cfg.Order, Seed: cfg.Seed}})
	if len(rs) == 0 {
		return QueueResult{}, err
	}
	return rs[0], err
}

// QueueGroup is one consumer group of a queue run: its consumers' order
// mode and the seed of its crash plan.
type QueueGroup struct {
	Order consume.Order
	Seed  uint64
}

// RunQueues is RunQueue with one consumer group per entry of groups (cfg's
// Order and Seed are not used), all handling the topic of one producer run
// at once, each with cfg.Consumers members and its own crash plan, and each
// judged on its own: it returns one result per group, in order, sharing
// the producer run's Result. One producer run serves every order mode under
// the same fault schedule, in the time of one. On an error before the
// consumers started it returns no result.
func RunQueues(ctx context.Context, cfg QueueConfig, groups []QueueGroup) ([]QueueResult, error) {
	if len(groups) == 0 {
		return nil, errors.New("verify: RunQueues needs a consumer group")
	}
	cfg.Order = groups[0].Order
	if len(groups) > 1 && cfg.Topic == "" {
		cfg.Topic = fmt.Sprintf("kafkaguard-queue-%s-%s", strings.ToLower(cfg.Preset.String()), strconv.FormatInt(time.Now().UnixNano(), 36))
	}
	cfg, err := cfg.normalize()
	errs := []error{err}
	for _, g := range groups[1:] {
		errs = append(errs, checkOrder(g.Order))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	runs := make(queueRuns, len(groups))
	for i, g := range groups {
		c := cfg
		c.Order, c.Seed = g.Order, g.Seed
		group := cfg.Topic + "-group"
		if len(groups) > 1 {
			group = fmt.Sprintf("%s-%d-%s-group", cfg.Topic, i+1, g.Order)
		}
		runs[i] = &queueRun{cfg: c, group: group, t0: time.Now(), rng: newCrashRand(g.Seed), halt: make(chan struct{})}
	}
	defer runs.stop()
	res, err := run(ctx, cfg.Config, runs)
	out := make([]QueueResult, len(runs))
	for i, q := range runs {
		out[i] = QueueResult{Result: res, Workload: WorkloadQueue, Order: q.cfg.Order.String(), Group: q.group, Seed: q.cfg.Seed}
		if err != nil {
			continue
		}
		h := q.history()
		h.Acked, h.Seed, h.Faults = res.Acked, res.Seed, res.FaultEvents
		out[i].History = &h
		out[i].Queue = CheckQueue(h)
	}
	return out, err
}

// newCrashRand returns the random source of a crash plan seeded by seed.
func newCrashRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// queueRuns are the consumer groups of one queue run (a sideWorkload).
type queueRuns []*queueRun

func (qs queueRuns) start(ctx context.Context, topic string) error {
	for _, q := range qs {
		if err := q.start(ctx, topic); err != nil {
			return err
		}
	}
	return nil
}

// finish lets every group catch up at once.
func (qs queueRuns) finish(ctx context.Context, read []Record) error {
	errs := make([]error, len(qs))
	var wg sync.WaitGroup
	for i, q := range qs {
		wg.Go(func() { errs[i] = q.finish(ctx, read) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (qs queueRuns) stop() {
	var wg sync.WaitGroup
	for _, q := range qs {
		wg.Go(func() { q.stop() })
	}
	wg.Wait()
}

// queueRun is the consumer side of a queue run (a sideWorkload).
type queueRun struct {
	cfg   QueueConfig
	group string
	t0    time.Time  // the run's start
	rng   *rand.Rand // the crash plan; used by one goroutine at a time

	seq atomic.Int64

	mu         sync.Mutex
	handles    []Handle
	deliveries []Delivery
	commits    []QueueCommit
	crashes    []QueueCrash
	log        []Record
	members    []*slot

	stopCrashes context.CancelFunc
	crashing    sync.WaitGroup // the crash loop
	reaping     sync.WaitGroup // closing crashed members
	supervising sync.WaitGroup // the slots' supervisors (supervise)
	halt        chan struct{}  // closed by stop: the supervisors end
	stopPoll    context.CancelFunc
	wg          sync.WaitGroup // the commit poller
	stopped     bool
}

// slot is one consumer position: the member running in it, and how many
// times it started.
type slot struct {
	id          int
	incarnation int
	m           member
}

func (q *queueRun) since() time.Duration { return time.Since(q.t0) }

func (q *queueRun) start(ctx context.Context, topic string) error {
	adm, err := q.admin()
	if err != nil {
		return err
	}
	pctx, stopPoll := context.WithCancel(context.WithoutCancel(ctx))
	q.stopPoll = stopPoll
	q.wg.Add(1)
	go func() {
		defer q.wg.Done()
		defer adm.Close()
		q.pollCommits(pctx, kadm.NewClient(adm))
	}()
	for i := range q.cfg.Consumers {
		s := &slot{id: i}
		if err := q.launch(ctx, s); err != nil {
			return err
		}
		q.mu.Lock()
		q.members = append(q.members, s)
		q.mu.Unlock()
	}
	cctx, stopCrashes := context.WithCancel(ctx)
	q.stopCrashes = stopCrashes
	q.crashing.Go(func() { q.crashLoop(cctx) })
	return nil
}

func (q *queueRun) admin() (*kgo.Client, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(q.cfg.Bootstrap...), kgo.MetadataMinAge(100*time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }))
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	return cl, nil
}

// launch starts a new member in slot s.
func (q *queueRun) launch(ctx context.Context, s *slot) error {
	name := fmt.Sprintf("c%d.%d", s.id, s.incarnation)
	s.incarnation++
	mc := memberConfig{
		name: name, slot: s.id, cfg: q.cfg, group: q.group,
		handleTime: q.cfg.HandleTime,
		seed:       q.rng.Uint64(),
		since:      q.since,
		record:     q.record,
		delivered:  q.delivered,
	}
	newMember := q.cfg.newMember
	if newMember == nil {
		newMember = newConsumeMember
	}
	m, err := newMember(mc)
	if err != nil {
		return err
	}
	q.mu.Lock()
	s.m = m
	q.mu.Unlock()
	m.start(ctx)
	q.cfg.Logger.Info("verify: consumer started", "consumer", name, "group", q.group)
	q.supervising.Go(func() { q.supervise(ctx, s, m) })
	return nil
}

// restartDelay is how long a slot whose member stopped on its own stays
// empty before a new member starts in it, as a process manager waits.
const restartDelay = 500 * time.Millisecond

// supervise restarts slot s when its member m stops on its own (see
// member.exited), as a process manager restarts a process that exited,
// until the run stops.
func (q *queueRun) supervise(ctx context.Context, s *slot, m member) {
	select {
	case <-m.exited():
	case <-q.halt:
		return
	}
	q.cfg.Logger.Warn("verify: consumer stopped on its own; restarting it", "consumer", m.name(), "group", q.group,
		"after", restartDelay)
	q.reaping.Go(m.close)
	select {
	case <-time.After(restartDelay):
	case <-q.halt:
		return
	}
	q.mu.Lock()
	current := s.m == m
	q.mu.Unlock()
	if !current {
		return
	}
	if err := q.launch(context.WithoutCancel(ctx), s); err != nil {
		q.cfg.Logger.Error("verify: consumer restart failed", "slot", s.id, "err", err)
	}
}

// record notes a handled record; the handler returns only after it.
func (q *queueRun) record(h Handle) {
	h.Seq = q.seq.Add(1)
	h.At = q.since()
	q.mu.Lock()
	q.handles = append(q.handles, h)
	q.mu.Unlock()
}

// delivered notes a record a member's poll returned.
func (q *queueRun) delivered(d Delivery) {
	d.At = q.since()
	q.mu.Lock()
	q.deliveries = append(q.deliveries, d)
	q.mu.Unlock()
}

// maxCrashDown bounds how long a crashed member stays down before it
// restarts.
const maxCrashDown = 200 * time.Millisecond

// plannedCrash is one crash of a crash plan: At after the members start,
// the member in slot Slot crashes, and Down later it restarts.
type plannedCrash struct {
	At, Down time.Duration
	Slot     int
}

// crashPlan draws n crashes of members in slots [0, slots) from rng, all
// within window: the crash and the restart both happen while the workload
// is produced. The window is cut into n equal parts and crash i falls at a
// random time in part i, early enough for its restart to fall there too.
func crashPlan(rng *rand.Rand, n, slots int, window time.Duration) []plannedCrash {
	part := window / time.Duration(max(n, 1))
	down := min(maxCrashDown, part/2)
	plan := make([]plannedCrash, 0, n)
	for i := range n {
		c := plannedCrash{At: time.Duration(i)*part + time.Duration(rng.Int64N(int64(part-down)+1)),
			Slot: rng.IntN(slots)}
		if down > 0 {
			c.Down = time.Duration(rng.Int64N(int64(down)))
		}
		plan = append(plan, c)
	}
	return plan
}

// crashLoop crashes cfg.Crashes members at random times while the
// workload is produced, restarting each a moment later, as crashPlan
// draws them (the plan's clock starts at the first record a member polls;
// victimLocked moves a crash off a member that holds no partition).
func (q *queueRun) crashLoop(ctx context.Context) {
	if q.cfg.Crashes < 0 || q.cfg.Consumers == 0 {
		return
	}
	// The plan spans the rest of the produce window from the first record
	// a member polls: a crash before the group has formed hits no
	// partition (under load forming it can take most of a short window).
	end := time.Now().Add(time.Duration(q.cfg.Records) * time.Second / time.Duration(q.cfg.Rate))
	for !q.polledAny() && time.Now().Before(end) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(commitPollEvery):
		}
	}
	start := time.Now()
	for _, c := range crashPlan(q.rng, q.cfg.Crashes, len(q.members), max(end.Sub(start), 0)) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(start.Add(c.At))):
		}
		q.mu.Lock()
		s := q.members[q.victimLocked(c.Slot)]
		dead := s.m
		q.mu.Unlock()
		q.mu.Lock()
		q.crashes = append(q.crashes, QueueCrash{At: q.since(), Consumer: dead.name()})
		q.mu.Unlock()
		q.cfg.Logger.Info("verify: consumer crash", "consumer", dead.name(), "group", q.group)
		dead.crash()
		// Its goroutines end in the background (a handler blocked on the cut
		// network waits out the drain timeout), as a killed process's
		// resources are reclaimed while its replacement starts.
		q.reaping.Go(dead.close)
		select {
		case <-ctx.Done():
		case <-time.After(c.Down):
		}
		if err := q.launch(context.WithoutCancel(ctx), s); err != nil {
			q.cfg.Logger.Error("verify: consumer restart failed", "slot", s.id, "err", err)
		}
	}
}

// busyWithin is how recently a member must have polled a record to count
// as holding partitions when a crash picks its victim.
const busyWithin = 300 * time.Millisecond

// victimLocked returns the slot a crash planned for slot planned hits: planned
// if its member polled a record within busyWithin, else the next slot
// (cyclically) whose member did, else planned. A member that holds no
// partition (a restarted one the group has not given any yet, or one a
// rebalance left idle) has nothing in flight: crashing it would show
// nothing of what a crash costs.
func (q *queueRun) victimLocked(planned int) int {
	// The deliveries are appended as they come: the recent ones are last.
	since := q.since() - busyWithin
	busy := map[string]bool{}
	for _, d := range slices.Backward(q.deliveries) {
		if d.At < since {
			break
		}
		busy[d.Consumer] = true
	}
	for i := range len(q.members) {
		slot := (planned + i) % len(q.members)
		if busy[q.members[slot].m.name()] {
			return slot
		}
	}
	return planned
}

// polledAny reports whether a member polled a record yet.
func (q *queueRun) polledAny() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.deliveries) > 0
}

// pollCommits observes the group's committed offsets until ctx ends,
// noting every change.
func (q *queueRun) pollCommits(ctx context.Context, adm *kadm.Client) {
	last := map[int32]QueueCommit{}
	for {
		q.observeCommits(ctx, adm, last)
		select {
		case <-ctx.Done():
			return
		case <-time.After(commitPollEvery):
		}
	}
}

func (q *queueRun) observeCommits(ctx context.Context, adm *kadm.Client, last map[int32]QueueCommit) {
	offs, err := adm.FetchOffsets(ctx, q.group)
	at := q.since()
	if err != nil {
		return
	}
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic != q.cfg.Topic || o.Err != nil || o.At < 0 {
			return
		}
		c := QueueCommit{At: at, Partition: o.Partition, Offset: o.At}
		if s, err := ordering.DecodeMetadata(o.Metadata); err == nil {
			for lo, hi := range s.Ranges() {
				c.Done = append(c.Done, [2]int64{lo, hi})
			}
		}
		if p, ok := last[o.Partition]; ok && p.Offset == c.Offset && slices.Equal(p.Done, c.Done) {
			return
		}
		last[o.Partition] = c
		q.mu.Lock()
		q.commits = append(q.commits, c)
		q.mu.Unlock()
	})
}

// finish stops the crashes, restarts nothing more, and lets the members
// run until every record of the log is handled and committed (at most
// queueDrainTimeout), then stops them cleanly and observes the final
// commits.
func (q *queueRun) finish(ctx context.Context, read []Record) error {
	q.mu.Lock()
	q.log = slices.Clone(read)
	q.mu.Unlock()
	q.stopCrashes()
	q.crashing.Wait()
	ends := map[int32]int64{}
	for _, r := range read {
		ends[r.Partition] = max(ends[r.Partition], r.Offset+1)
	}
	wctx, cancel := context.WithTimeout(ctx, queueDrainTimeout)
	defer cancel()
	for !q.caughtUp(ends) {
		select {
		case <-wctx.Done():
			q.cfg.Logger.Warn("verify: consumers did not handle and commit the whole log", "group", q.group, "after", queueDrainTimeout)
			return q.stop()
		case <-time.After(commitPollEvery):
		}
	}
	return q.stop()
}

// caughtUp reports whether the last observed commit of every partition is
// at its end and every record of the log was handled, or no record was
// handled for a while: with the commits at the end the group delivers
// nothing more, so a record still unhandled never will be.
func (q *queueRun) caughtUp(ends map[int32]int64) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	committed := map[int32]int64{}
	for _, c := range q.commits {
		committed[c.Partition] = c.Offset
	}
	for p, end := range ends {
		if committed[p] < end {
			return false
		}
	}
	if n := len(q.handles); n > 0 && q.since()-q.handles[n-1].At > quietAfterCommits {
		return true
	}
	handled := make(map[position]bool, len(q.handles))
	for _, h := range q.handles {
		handled[position{h.Partition, h.Offset}] = true
	}
	for _, r := range q.log {
		if !handled[position{r.Partition, r.Offset}] {
			return false
		}
	}
	return true
}

// stop stops the crashes, every member (cleanly: drain, commit, leave)
// and, after a last observation, the commit poller. It may be called more
// than once.
func (q *queueRun) stop() error {
	q.mu.Lock()
	if q.stopped {
		q.mu.Unlock()
		return nil
	}
	q.stopped = true
	q.mu.Unlock()
	if q.stopCrashes != nil {
		q.stopCrashes()
	}
	q.crashing.Wait()
	close(q.halt)
	q.supervising.Wait() // a restart under way has put its member in its slot
	q.mu.Lock()
	var current []member
	for _, s := range q.members {
		current = append(current, s.m)
	}
	q.mu.Unlock()
	var wg sync.WaitGroup
	for _, m := range current {
		wg.Go(m.close)
	}
	wg.Wait()
	q.reaping.Wait()
	if q.stopPoll != nil {
		// One last look at the commits made on the way out.
		time.Sleep(2 * commitPollEvery)
		q.stopPoll()
	}
	q.wg.Wait()
	return nil
}

func (q *queueRun) history() QueueHistory {
	q.mu.Lock()
	defer q.mu.Unlock()
	return QueueHistory{Order: q.cfg.Order, Log: slices.Clone(q.log), Handles: slices.Clone(q.handles),
		Deliveries: slices.Clone(q.deliveries), Commits: slices.Clone(q.commits), Crashes: slices.Clone(q.crashes)}
}

// member is one group member of a queue run.
type member interface {
	name() string
	// start runs the member until close or crash.
	start(ctx context.Context)
	// crash kills it as a dead process is killed, at once: nothing it does
	// afterwards reaches the cluster (no commit, no leave) or the history.
	// It does not wait for the member's goroutines: close does.
	crash()
	// close stops it cleanly (drain, commit, leave), or, after a crash,
	// waits for its goroutines to end.
	close()
	// exited is closed when the member stopped on its own, neither crashed
	// nor closed (its Run returned an error: every broker unreachable while
	// it started its producer, say); the queue run then restarts its slot.
	exited() <-chan struct{}
}

// memberConfig is what a member is built from.
type memberConfig struct {
	name       string
	slot       int // the member's slot, the same across its restarts
	cfg        QueueConfig
	group      string
	handleTime time.Duration
	seed       uint64
	since      func() time.Duration // time since the run's start
	record     func(Handle)
	delivered  func(Delivery) // a record the member's poll returned
	// sleep waits d or until ctx ends and returns how long it took (nil:
	// sleepFor, the real clock); tests give a clock of their own.
	sleep func(ctx context.Context, d time.Duration) (time.Duration, error)
}

// sleepFor waits d or until ctx ends, and returns how long it waited.
func sleepFor(ctx context.Context, d time.Duration) (time.Duration, error) {
	t := time.Now()
	select {
	case <-time.After(d):
		return time.Since(t), nil
	case <-ctx.Done():
		return time.Since(t), ctx.Err()
	}
}

// pollHook reports each record a member's polls return, with the member's
// group session and generation when it got it (kgo calls it on the polling
// goroutine, in order, before the poll returns), until the member is dead.
type pollHook struct {
	mc       memberConfig
	cl       atomic.Pointer[kgo.Client]
	dead     *atomic.Bool
	sessions atomic.Int32 // group sessions ended by an error
}

func (h *pollHook) OnNewClient(cl *kgo.Client) { h.cl.Store(cl) }

// OnGroupManageError counts a group session that ended in an error: kgo
// then treats every partition as lost and joins again, and a coordinator
// that moved may hand out a generation number the member saw before.
// Polls are blocked while kgo calls it, so no record of the old assignment
// is polled after it.
func (h *pollHook) OnGroupManageError(error) { h.sessions.Add(1) }

func (h *pollHook) OnFetchRecordUnbuffered(r *kgo.Record, polled bool) {
	cl := h.cl.Load()
	if !polled || cl == nil || h.dead.Load() || h.mc.delivered == nil {
		return
	}
	v, err := ParseValue(r.Value)
	if err != nil {
		return // counted as corrupt by the read-back
	}
	_, gen := cl.GroupMetadata()
	h.mc.delivered(Delivery{Consumer: h.mc.name, Session: h.sessions.Load(), Generation: gen,
		Partition: r.Partition, Offset: r.Offset, Value: v})
}

// clientOpts are the kgo options of a member's client: the group, the
// topic, a dialer that a crash cuts, and a hook that notes its polls until
// dead is set.
func (mc memberConfig) clientOpts(n *netcut.Dialer, ctx context.Context, dead *atomic.Bool) []kgo.Opt {
	return []kgo.Opt{
		kgo.WithHooks(&pollHook{mc: mc, dead: dead}),
		kgo.SeedBrokers(mc.cfg.Bootstrap...),
		kgo.ClientID("kafkaguard-verify-" + mc.name),
		kgo.ConsumerGroup(mc.group),
		kgo.ConsumeTopics(mc.cfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(mc.cfg.SessionTimeout),
		kgo.HeartbeatInterval(max(mc.cfg.SessionTimeout/10, 10*time.Millisecond)),
		kgo.RebalanceTimeout(15 * time.Second),
		kgo.FetchMaxWait(100 * time.Millisecond),
		kgo.MetadataMinAge(100 * time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }),
		kgo.Dialer(n.Dial),
		kgo.WithContext(ctx),
	}
}

// sleepGranularity is about the shortest sleep Go's timers keep to on a
// loaded Linux machine: a time.Sleep of 10 µs to 1 ms takes 0.5 to 1.1 ms.
const sleepGranularity = time.Millisecond

// handler returns the member's record handler: it takes a random time up
// to handleTime, then records the handle unless the member crashed.
//
// A handle time shorter than the timers' granularity cannot be slept
// alone (a random time up to 1 ms slept for each record takes 1.1 ms on
// average, more than the bound), so the handler keeps, per partition and
// key, the time its records still owe: a record adds its time, and the
// record that brings the debt to sleepGranularity sleeps it all, minus
// what earlier sleeps overshot. A partition's and a key's records then
// take their drawn times on average, as a handler doing that work would.
func (mc memberConfig) handler(dead *atomic.Bool) func(context.Context, *kgo.Record) error {
	type lane struct {
		partition int32
		key       string
	}
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(mc.seed, 1))
	owed := map[lane]time.Duration{}
	sleep := mc.sleep
	if sleep == nil {
		sleep = sleepFor
	}
	return func(ctx context.Context, r *kgo.Record) error {
		began := mc.since()
		if mc.handleTime > 0 {
			l := lane{r.Partition, string(r.Key)}
			mu.Lock()
			owed[l] += time.Duration(rng.Int64N(int64(mc.handleTime)))
			d := owed[l]
			if d >= sleepGranularity {
				owed[l] = 0
			}
			mu.Unlock()
			if d >= sleepGranularity {
				took, err := sleep(ctx, d)
				if err != nil {
					return err
				}
				mu.Lock()
				owed[l] -= took - d // an overshoot is paid in advance
				mu.Unlock()
			}
		}
		if dead.Load() {
			return nil // a dead process handles nothing; its commits cannot leave it
		}
		v, err := ParseValue(r.Value)
		if err != nil {
			return nil // counted as corrupt by the read-back
		}
		mc.record(Handle{Consumer: mc.name, Partition: r.Partition, Offset: r.Offset, Value: v, Start: began})
		return nil
	}
}

// consumeMember is a consume.Consumer on a client whose network a crash
// cuts (a queue run's consumer, or a copier).
type consumeMember struct {
	mc        memberConfig
	cl        *kgo.Client       // nil when the Consumer made its own (exactly-once)
	p         *produce.Producer // an at-least-once copier's producer, or nil
	c         *consume.Consumer
	net       *netcut.Dialer
	dead      atomic.Bool
	cancelCl  context.CancelFunc
	cancelRun context.CancelFunc
	done      chan struct{}
	exit      chan struct{} // closed when Run returned on its own
	closeOnce sync.Once
}

func newConsumeMember(mc memberConfig) (member, error) {
	m := &consumeMember{mc: mc, net: &netcut.Dialer{}, done: make(chan struct{}), exit: make(chan struct{})}
	clCtx, cancelCl := context.WithCancel(context.Background())
	m.cancelCl = cancelCl
	hooks := consume.NewHooks()
	cl, err := kgo.NewClient(append(mc.clientOpts(m.net, clCtx, &m.dead), hooks.KgoOpts()...)...)
	if err != nil {
		cancelCl()
		return nil, fmt.Errorf("verify: consumer %s: %w", mc.name, err)
	}
	c, err := consume.New(mc.handler(&m.dead), consume.Client(cl, hooks), consume.OrderBy(mc.cfg.Order),
		consume.CommitInterval(mc.cfg.CommitInterval), consume.DrainTimeout(5*time.Second),
		consume.Logger(mc.cfg.Logger.With("consumer", mc.name)))
	if err != nil {
		cl.Close()
		cancelCl()
		return nil, fmt.Errorf("verify: consumer %s: %w", mc.name, err)
	}
	m.cl, m.c = cl, c
	return m, nil
}

func (m *consumeMember) name() string { return m.mc.name }

func (m *consumeMember) start(ctx context.Context) {
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancelRun = cancel
	go func() {
		defer close(m.done)
		err := m.c.Run(rctx)
		if err != nil && !m.dead.Load() {
			m.mc.cfg.Logger.Warn("verify: consumer stopped with an error", "consumer", m.mc.name, "err", err)
		}
		if !m.dead.Load() && rctx.Err() == nil {
			close(m.exit) // neither crashed nor closed
		}
	}()
}

func (m *consumeMember) exited() <-chan struct{} { return m.exit }

// crash cuts the member's network first (nothing it does after reaches
// the cluster: no commit, no leave), then marks it dead so its handlers
// record nothing more, and cancels its clients.
func (m *consumeMember) crash() {
	m.net.Cut()
	m.dead.Store(true)
	m.cancelCl()
}

func (m *consumeMember) close() { m.shutdown() }

func (m *consumeMember) shutdown() {
	m.closeOnce.Do(func() {
		m.cancelRun()
		<-m.done
		if m.cl != nil {
			m.cl.CloseAllowingRebalance()
		}
		if m.p != nil {
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = m.p.Close(cctx)
			cancel()
		}
		m.cancelCl()
	})
}

// ErrUnknownOrder is returned for an order mode name other than those of
// [Orders].
var ErrUnknownOrder = errors.New("verify: unknown order mode")

// Orders returns consume's order modes, as the queue workload runs them.
func Orders() []consume.Order {
	return []consume.Order{consume.KeyOrder, consume.PartitionOrder, consume.Unordered}
}

// ParseOrder returns the order mode with the given name, such as
// "KeyOrder". Case is ignored.
func ParseOrder(name string) (consume.Order, error) {
	return parseNamed(name, Orders(), consume.Order.String, ErrUnknownOrder)
}
