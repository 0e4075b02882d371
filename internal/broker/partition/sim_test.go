package partition

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
	"github.com/kafkaguard/kafkaguard/internal/broker/records"
)

// The randomized replication test: three real replicas on temp dirs, a fake clock, and an
// in-test controller that applies ISR changes and elects leaders as cluster.Controller does. One
// schedule interleaves, at the grain of single calls, acks=all produces, follower fetches (the
// request reaching the leader and its response reaching the follower are separate steps, so a
// fetch can be in flight or dropped), ISR checks, the controller's answers to ISR changes, the
// delivery of metadata to each broker, kills, the controller noticing them (fencing and
// elections) and restarts. After every election and at the end it checks that nothing committed
// or acknowledged was lost.

const simLagMax = 10 * time.Second

// simController is the controller's state of the partition, and its rules: the same as
// cluster.Controller's AlterISR, removeFromPartitionLocked, electLocked and electOfflineLocked.
type simController struct {
	st      meta.Partition
	alive   [3]bool // registered and not fenced
	version int     // bumped by every change, to deliver it to each broker once
}

func (c *simController) inISR(id int32) bool { return slices.Contains(c.st.ISR, id) }

func (c *simController) alterISR(from, leaderEpoch, partEpoch int32, isr []int32) error {
	st := &c.st
	switch {
	case st.Leader != from || st.LeaderEpoch != leaderEpoch:
		return kerr.FencedLeaderEpoch
	case st.Epoch != partEpoch:
		return kerr.InvalidUpdateVersion
	case !slices.Contains(isr, from):
		return kerr.InvalidRequest
	}
	for _, id := range isr {
		if !slices.Contains(st.Replicas, id) {
			return kerr.InvalidReplicaAssignment
		}
		if !c.inISR(id) && !c.alive[id] {
			return kerr.IneligibleReplica
		}
	}
	st.ISR = slices.Clone(isr)
	st.Epoch++
	c.version++
	return nil
}

// fence declares a broker dead: it leaves the ISR unless it is the last member, and a partition
// it led elects a new leader. It reports whether there was an election.
func (c *simController) fence(id int32) bool {
	c.alive[id] = false
	st := &c.st
	if c.inISR(id) && len(st.ISR) > 1 {
		st.ISR = slices.DeleteFunc(slices.Clone(st.ISR), func(x int32) bool { return x == id })
		st.Epoch++
	}
	c.version++
	if st.Leader != id {
		return false
	}
	c.elect()
	return true
}

// elect picks the first live ISR member in replica order (no unclean election).
func (c *simController) elect() {
	st := &c.st
	old := st.Leader
	st.Leader = meta.NoLeader
	for _, r := range st.Replicas {
		if c.inISR(r) && c.alive[r] {
			st.Leader = r
			break
		}
	}
	if st.Leader != old {
		st.LeaderEpoch++
		st.Epoch++
	}
	c.version++
}

// register brings a restarted broker back; an offline partition elects again.
func (c *simController) register(id int32) bool {
	c.alive[id] = true
	c.version++
	if c.st.Leader == meta.NoLeader {
		c.elect()
		return c.st.Leader != meta.NoLeader
	}
	return false
}

type simAlter struct {
	rep                    *Replica
	from                   int32
	leaderEpoch, partEpoch int32
	isr                    []int32
	reply                  chan error
}

type simFetch struct {
	res   ReadResult
	epoch int32
}

type sim struct {
	t         *testing.T
	rnd       *rand.Rand
	seed      uint64
	oldRule   bool
	minISR    int
	clock     *clock
	dirs      [3]string
	reps      [3]*Replica
	up        [3]bool // the process runs
	applied   [3]int
	trunc     [3]bool // must truncate against its leader before fetching
	inflight  [3]*simFetch
	fetchRate [3]int // how often each follower fetches, per schedule: some lag
	ctrl      simController
	alters    chan simAlter
	pending   []simAlter
	hwMax     int64 // the highest high watermark any leader reached: committed
	produced  int
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	mu        sync.Mutex
	acked     map[int64]string
	trace     []string
	loss      string
}

func newSim(t *testing.T, seed uint64, oldRule bool) *sim {
	s := &sim{
		t: t, rnd: rand.New(rand.NewPCG(seed, 11)), seed: seed, oldRule: oldRule,
		clock:  &clock{now: time.Unix(1_700_000_000, 0)},
		alters: make(chan simAlter, 16),
		acked:  map[int64]string{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.minISR = 1 + s.rnd.IntN(2)
	s.ctrl.st = meta.Partition{Replicas: []int32{0, 1, 2}, ISR: []int32{0, 1, 2}, Leader: 0, LeaderEpoch: 0, Epoch: 0}
	s.ctrl.alive = [3]bool{true, true, true}
	s.ctrl.version = 1
	for i := range s.reps {
		s.dirs[i] = t.TempDir()
		s.open(int32(i))
		s.fetchRate[i] = 6
	}
	s.fetchRate[s.rnd.IntN(3)] = 1 // one broker lags behind as a follower
	return s
}

func (s *sim) open(id int32) {
	var me *Replica
	cfg := Config{
		BrokerID: id, Topic: "sim", Partition: 0,
		MinISR: s.minISR, MaxMessageBytes: 1 << 20, ReplicaLagMax: simLagMax,
		Now: s.clock.Now, UnsafeHWOnCommittedISR: s.oldRule,
		AlterISR: func(ctx context.Context, leaderEpoch, partEpoch int32, isr []int32) error {
			a := simAlter{rep: me, from: id, leaderEpoch: leaderEpoch, partEpoch: partEpoch, isr: slices.Clone(isr), reply: make(chan error, 1)}
			s.alters <- a
			select {
			case err := <-a.reply:
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		},
	}
	r, err := Open(s.dirs[id], cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	me = r
	s.reps[id], s.up[id] = r, true
	s.t.Cleanup(func() { r.Close() })
}

func (s *sim) logf(format string, args ...any) {
	s.trace = append(s.trace, fmt.Sprintf(format, args...))
}

func altering(r *Replica) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.altering
}

// settle waits until every ISR change a replica has started to send is queued at the controller
// and every answered one has been taken in by its replica, so that a schedule depends on its
// seed only.
func (s *sim) settle() {
	for {
		select {
		case a := <-s.alters:
			s.pending = append(s.pending, a)
			s.logf("  proposal from %d: isr %v (epochs %d/%d)", a.from, a.isr, a.leaderEpoch, a.partEpoch)
			continue
		default:
		}
		waiting := false
		for _, r := range s.reps {
			if altering(r) && !slices.ContainsFunc(s.pending, func(a simAlter) bool { return a.rep == r }) {
				waiting = true
			}
		}
		if !waiting {
			return
		}
		select {
		case a := <-s.alters:
			s.pending = append(s.pending, a)
			s.logf("  proposal from %d: isr %v (epochs %d/%d)", a.from, a.isr, a.leaderEpoch, a.partEpoch)
		case <-time.After(10 * time.Second):
			s.t.Fatal("a replica is sending an ISR change that never reaches the controller")
		}
	}
}

func (s *sim) leo(id int32) int64 { return s.reps[id].Log().EndOffset() }

// produce sends one acks=all record to the broker the controller names leader, and returns once
// it is appended or refused; its answer is recorded whenever it comes.
func (s *sim) produce() {
	l := s.ctrl.st.Leader
	if l < 0 || !s.up[l] {
		return
	}
	r := s.reps[l]
	before := r.Log().EndOffset()
	s.produced++
	value := fmt.Sprintf("v%d", s.produced)
	b := records.Build([]records.Record{{Value: []byte(value)}}, 1_700_000_000_000, records.NoProducer)
	done := make(chan struct{})
	changed := make(chan struct{}, 1)
	defer r.Watch(changed)()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(done)
		res, err := r.Append(s.ctx, b, -1)
		if err == nil {
			s.mu.Lock()
			s.acked[res.BaseOffset] = value
			s.mu.Unlock()
		}
	}()
	for r.Log().EndOffset() == before {
		select {
		case <-done:
			s.logf("produce %s to %d: refused", value, l)
			return
		case <-changed:
		}
	}
	s.logf("produce %s to %d at %d", value, l, before)
}

// fetchRequest is follower id's fetch reaching the leader it knows (after truncating against it
// when it just became a follower).
func (s *sim) fetchRequest(id int32) {
	r := s.reps[id]
	l := r.State().Leader
	if l < 0 || l == id || !s.up[l] {
		return
	}
	leader := s.reps[l]
	if s.trunc[id] {
		latest := r.Log().LatestEpoch()
		if latest >= 0 {
			e, end, err := leader.EpochEndOffset(r.LeaderEpoch(), latest)
			if err != nil {
				return
			}
			done, err := r.TruncateAgainst(e, end, r.LeaderEpoch())
			if err != nil {
				s.t.Fatal(err)
			}
			if !done {
				return // asked again at the next fetch
			}
			s.logf("%d truncates to %d against %d", id, r.Log().EndOffset(), l)
		}
		s.trunc[id] = false
	}
	epoch := r.LeaderEpoch()
	// As the broker's fetcher sends it (Fetch v12+): the epoch of its last batch, if any.
	last := r.Log().LatestEpoch()
	res, err := leader.Read(FetchRequest{Offset: r.Log().EndOffset(), MaxBytes: 1 << 20, ReplicaID: id, CurrentLeaderEpoch: epoch,
		HasLastFetchedEpoch: last >= 0, LastFetchedEpoch: last})
	if errors.Is(err, kerr.OffsetOutOfRange) {
		s.trunc[id] = true
	}
	if err != nil {
		return
	}
	if d := res.DivergingEpoch; d != nil {
		// The leader found the logs diverge (KIP-320): truncate as the fetcher does.
		done, err := r.TruncateAgainst(d.Epoch, d.EndOffset, epoch)
		if err != nil {
			s.t.Fatal(err)
		}
		s.trunc[id] = !done
		s.logf("%d truncates to %d on a diverging epoch from %d", id, r.Log().EndOffset(), l)
		return
	}
	s.inflight[id] = &simFetch{res: res, epoch: epoch}
	s.logf("%d fetches from %d at %d (leader hw %d)", id, l, r.Log().EndOffset(), res.HighWatermark)
}

// fetchResponse is the answer to follower id's fetch in flight reaching it.
func (s *sim) fetchResponse(id int32) {
	f := s.inflight[id]
	if f == nil {
		return
	}
	s.inflight[id] = nil
	err := s.reps[id].AppendReplicated(f.res.Records, f.res.HighWatermark, f.epoch)
	s.logf("%d takes its fetch: leo %d (%v)", id, s.reps[id].Log().EndOffset(), err)
}

// answer is the controller handling the oldest ISR change sent to it.
func (s *sim) answer() {
	if len(s.pending) == 0 {
		return
	}
	a := s.pending[0]
	s.pending = s.pending[1:]
	err := s.ctrl.alterISR(a.from, a.leaderEpoch, a.partEpoch, a.isr)
	s.logf("controller: isr %v from %d: %v (now %+v)", a.isr, a.from, err, s.ctrl.st)
	a.reply <- err
	for altering(a.rep) {
		runtime.Gosched()
	}
}

// deliver applies the controller's newest state on broker id.
func (s *sim) deliver(id int32) {
	if !s.up[id] || s.applied[id] == s.ctrl.version {
		return
	}
	s.applied[id] = s.ctrl.version
	st := s.ctrl.st
	st.Replicas, st.ISR = slices.Clone(st.Replicas), slices.Clone(st.ISR)
	if s.reps[id].Apply(st) {
		s.trunc[id], s.inflight[id] = true, nil
	}
	s.logf("%d applies %+v", id, st)
}

// kill stops broker id: it drops its role and fails the produces waiting on it, and takes no part
// in replication until restarted. (Its log is not closed: closing syncs, and what this test
// checks is the high watermark and ISR logic, not durability.)
func (s *sim) kill(id int32) {
	if !s.up[id] {
		return
	}
	s.up[id] = false
	s.reps[id].Stop(kerr.NotLeaderForPartition)
	s.logf("kill %d (leo %d)", id, s.leo(id))
}

// restart brings broker id back: it registers, and learns its role from the next metadata it
// is delivered.
func (s *sim) restart(id int32) {
	if s.up[id] {
		return
	}
	s.up[id], s.applied[id], s.trunc[id], s.inflight[id] = true, 0, false, nil
	elected := s.ctrl.register(id)
	s.logf("restart %d (leo %d); controller %+v", id, s.leo(id), s.ctrl.st)
	if elected {
		s.checkElected()
	}
}

// fence is the controller noticing a dead broker.
func (s *sim) fence(id int32) {
	if s.up[id] || !s.ctrl.alive[id] {
		return
	}
	elected := s.ctrl.fence(id)
	s.logf("controller fences %d: %+v", id, s.ctrl.st)
	if elected {
		s.checkElected()
	}
}

// checkElected checks the new leader has every committed record: its log reaches the highest
// high watermark any leader reached.
func (s *sim) checkElected() {
	l := s.ctrl.st.Leader
	s.logf("elected %d", l)
	if l < 0 || s.loss != "" {
		return
	}
	if leo := s.leo(l); leo < s.hwMax {
		s.loss = fmt.Sprintf("elected leader %d ends at %d, below the committed high watermark %d", l, leo, s.hwMax)
	}
}

func (s *sim) observeHW() {
	l := s.ctrl.st.Leader
	if l >= 0 && s.up[l] && s.reps[l].IsLeader() {
		s.hwMax = max(s.hwMax, s.reps[l].HighWatermark())
	}
}

// step takes one action, chosen at random among those that can happen now.
func (s *sim) step() {
	type action struct {
		weight int
		do     func()
	}
	var acts []action
	add := func(weight int, do func()) { acts = append(acts, action{weight, do}) }
	l := s.ctrl.st.Leader
	if l >= 0 && s.up[l] {
		add(10, s.produce)
		add(6, func() {
			s.clock.Advance(time.Duration(s.rnd.IntN(8)) * time.Second)
			s.reps[l].CheckISR()
		})
	}
	alive := 0
	for id := range int32(3) {
		switch {
		case s.up[id]:
			alive++
			if s.applied[id] != s.ctrl.version {
				add(4, func() { s.deliver(id) })
			}
			if lid := s.reps[id].State().Leader; lid >= 0 && lid != id && s.up[lid] {
				add(s.fetchRate[id], func() { s.fetchRequest(id) })
			}
			if s.inflight[id] != nil {
				add(5, func() { s.fetchResponse(id) })
			}
		case s.ctrl.alive[id]:
			add(6, func() { s.fence(id) })
		default:
			add(3, func() { s.restart(id) })
		}
	}
	if alive > 1 {
		add(2, func() {
			id := int32(s.rnd.IntN(3))
			if l >= 0 && s.rnd.IntN(2) == 0 {
				id = l // the leader dies more often: that is when elections happen
			}
			s.kill(id)
		})
	}
	if len(s.pending) > 0 {
		add(6, s.answer)
	}
	total := 0
	for _, a := range acts {
		total += a.weight
	}
	n := s.rnd.IntN(total)
	for _, a := range acts {
		if n -= a.weight; n < 0 {
			a.do()
			break
		}
	}
	s.settle()
	s.observeHW()
}

// pick returns a random broker for which ok holds, or -1.
func (s *sim) pick(ok func(id int32) bool) int32 {
	var ids []int32
	for id := range int32(3) {
		if ok(id) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return -1
	}
	return ids[s.rnd.IntN(len(ids))]
}

// finish restarts every broker, lets the controller catch up, and checks every acknowledged
// record is in the elected leader's log.
func (s *sim) finish() {
	for id := range int32(3) {
		s.fence(id)
	}
	for id := range int32(3) {
		s.restart(id)
	}
	s.drainAlters()
	s.cancel()
	s.wg.Wait()
	if s.loss != "" {
		return
	}
	l := s.ctrl.st.Leader
	if l < 0 {
		s.loss = "no leader at the end"
		return
	}
	r := s.reps[l]
	got := map[int64]string{}
	for off := int64(0); off < r.Log().EndOffset(); {
		data, err := r.Log().Read(off, 1<<20, r.Log().EndOffset())
		if err != nil {
			s.t.Fatal(err)
		}
		bs, err := records.Decode(data)
		if err != nil || len(bs) == 0 {
			s.t.Fatalf("decode leader log at %d: %v", off, err)
		}
		for _, b := range bs {
			for i, rec := range b.Recs {
				got[b.FirstOffset+int64(i)] = string(rec.Value)
			}
			off = b.FirstOffset + int64(len(b.Recs))
		}
	}
	for off, v := range s.acked {
		if got[off] != v {
			s.loss = fmt.Sprintf("acknowledged %s at offset %d lost: leader %d has %q there", v, off, l, got[off])
			return
		}
	}
}

// drainAlters refuses every ISR change in flight and waits until no replica sends one.
func (s *sim) drainAlters() {
	over := errors.New("sim: schedule over")
	for _, a := range s.pending {
		a.reply <- over
	}
	s.pending = nil
	for slices.ContainsFunc(s.reps[:], altering) {
		select {
		case a := <-s.alters:
			a.reply <- over
		default:
			runtime.Gosched()
		}
	}
}

// runSim runs one schedule of steps and returns a description of the first loss, or "".
func runSim(t *testing.T, seed uint64, steps int, oldRule bool) (loss, trace string) {
	s := newSim(t, seed, oldRule)
	s.deliverAll()
	for range steps {
		s.step()
	}
	s.finish()
	return s.loss, strings.Join(s.trace, "\n")
}

func (s *sim) deliverAll() {
	for id := range int32(3) {
		s.deliver(id)
	}
	s.settle()
}

const simSeeds, simSteps = 200, 120

func TestRandomizedReplicationNeverLosesAcknowledgedRecords(t *testing.T) {
	for seed := range uint64(simSeeds) {
		if loss, trace := runSim(t, seed, simSteps, false); loss != "" {
			t.Fatalf("seed %d: %s\nschedule:\n%s", seed, loss, trace)
		}
	}
}

// TestRandomizedReplicationFindsLossUnderTheCommittedISRRule proves the randomized test can fail:
// with the high watermark counted over the committed ISR only (the rule before KIP-497's maximal
// ISR), some schedule of the same length loses an acknowledged or committed record.
func TestRandomizedReplicationFindsLossUnderTheCommittedISRRule(t *testing.T) {
	for seed := range uint64(simSeeds) {
		if loss, _ := runSim(t, seed, simSteps, true); loss != "" {
			t.Logf("seed %d: %s", seed, loss)
			return
		}
	}
	t.Fatalf("no loss found in %d seeds with the committed-ISR-only rule", simSeeds)
}
