package verify

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// schedule carries out a Fault while the producer runs, remembering what
// it broke so that restore can put it back.
type schedule struct {
	cfg      Config
	adm      *kadm.Client
	prog     *progressor
	sent     *atomic.Int64
	produced <-chan struct{} // closed when the producer has sent everything
	tally    *tally
	gate     *gate // holds the producer until the schedule is ready for it

	// part is the partition the faults aim at: the one that had the most
	// acknowledgements when the first fault struck.
	part int32

	killed, isolated, paused map[int32]bool
	// What a random schedule broke besides: frozen processes, cut
	// controller links, added latency and one-way cuts.
	frozen, ctrlCut, delayed, ctrlDelayed map[int32]bool
	cuts                                  map[[2]int32]bool

	nemesis    Schedule  // a random schedule's windows (FaultRandom)
	controller int32     // the controller the metadata named when it was drawn
	events     *eventLog // every fault operation carried out
}

func (s *schedule) run(ctx context.Context) error {
	n := s.cfg.Records
	switch s.cfg.Fault {
	case FaultNone:
		return nil
	case FaultRandom:
		return s.runRandom(ctx)
	case FaultKillLeader:
		s.waitSent(ctx, n/3)
		s.part = s.tally.busiestPartition()
		leader, err := s.leader(ctx)
		if err != nil {
			return err
		}
		if err := s.kill(ctx, leader); err != nil {
			return err
		}
		if err := s.waitNewLeader(ctx, leader); err != nil {
			return err
		}
		return s.restart(ctx, leader)
	case FaultKillFollower:
		s.waitSent(ctx, n/3)
		s.part = s.tally.busiestPartition()
		leader, replicas, err := s.replicas(ctx)
		if err != nil {
			return err
		}
		f, err := s.plainFollower(ctx, leader, replicas)
		if err != nil {
			return err
		}
		if err := s.kill(ctx, f); err != nil {
			return err
		}
		s.waitOutOfISR(ctx, f)
		return s.restart(ctx, f)
	case FaultIsolateLeader:
		s.waitSent(ctx, n/3)
		s.part = s.tally.busiestPartition()
		leader, err := s.leader(ctx)
		if err != nil {
			return err
		}
		s.prog.stage(fmt.Sprintf("isolate leader %d", leader))
		s.log(OpIsolate, leader)
		if err := s.cfg.Faults.Isolate(ctx, leader); err != nil {
			return err
		}
		s.isolated[leader] = true
		if err := s.waitNewLeader(ctx, leader); err != nil {
			return err
		}
		s.prog.stage(fmt.Sprintf("heal broker %d", leader))
		s.log(OpHeal, leader)
		if err := s.cfg.Faults.Heal(ctx, leader); err != nil {
			return err
		}
		delete(s.isolated, leader)
		return nil
	case FaultPauseFollowersKillLeader:
		// The producer waits at the gate while the followers catch up and
		// are paused: every record it hands over afterwards is on the
		// leader alone, and the leader dies once it has acknowledged one of
		// them on the target partition, with the followers still in the
		// ISR. So acks=1 loses records by construction, not by timing.
		s.waitSent(ctx, s.gate.at)
		s.part = s.tally.busiestPartition()
		s.prog.stage("wait for a full ISR")
		if err := waitHealthy(ctx, s.adm, s.cfg.Topic, healthyTimeout); err != nil {
			return err
		}
		leader, replicas, err := s.replicas(ctx)
		if err != nil {
			return err
		}
		fs := followers(leader, replicas)
		for _, f := range fs {
			s.prog.stage(fmt.Sprintf("pause replication on %d", f))
			s.log(OpPauseReplication, f)
			if err := s.cfg.Faults.PauseReplication(ctx, f); err != nil {
				return err
			}
			s.paused[f] = true
		}
		s.prog.stage(fmt.Sprintf("leader %d alone", leader))
		s.gate.release()
		wctx, cancel := context.WithTimeout(ctx, maxPauseWindow)
		alone := s.waitAckedAlone(wctx)
		s.waitSent(wctx, n/2)
		cancel()
		if alone == 0 {
			s.cfg.Logger.Warn("verify: the leader acknowledged no record alone before the pause window ended",
				"topic", s.cfg.Topic, "partition", s.part, "window", maxPauseWindow)
		}
		if err := s.kill(ctx, leader); err != nil {
			return err
		}
		for _, f := range fs {
			s.prog.stage(fmt.Sprintf("resume replication on %d", f))
			s.log(OpResumeReplication, f)
			if err := s.cfg.Faults.ResumeReplication(ctx, f); err != nil {
				return err
			}
			delete(s.paused, f)
		}
		if err := s.waitNewLeader(ctx, leader); err != nil {
			return err
		}
		return s.restart(ctx, leader)
	case FaultPowerLossAllReplicas:
		// The power goes out once the target partition holds acknowledged records: with the
		// default flush policy their loss is then certain, not a matter of timing.
		s.waitSent(ctx, n/3)
		s.waitAcked(ctx)
		s.part = s.tally.busiestPartition()
		_, replicas, err := s.replicas(ctx)
		if err != nil {
			return err
		}
		s.prog.stage(fmt.Sprintf("power loss on %v", replicas))
		for _, id := range replicas {
			s.log(OpPowerLoss, id)
		}
		err = s.cfg.Faults.(PowerLosser).PowerLoss(ctx, replicas...)
		for _, id := range replicas {
			s.killed[id] = true // restore restarts them even if the power loss failed half-way
		}
		if err != nil {
			return err
		}
		for _, id := range replicas {
			if err := s.restart(ctx, id); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("%w %q", ErrUnknownFault, s.cfg.Fault)
}

// restore undoes whatever the schedule left broken, with its own deadline
// so that a cancelled run still puts a real cluster back.
func (s *schedule) restore(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), restoreTimeout)
	defer cancel()
	var errs []error
	for _, id := range sortedIDs(s.frozen) {
		s.log(OpResume, id)
		errs = append(errs, s.cfg.Faults.(Pauser).Resume(ctx, id))
	}
	for _, id := range sortedIDs(s.ctrlCut) {
		s.log(OpReconnectController, id)
		errs = append(errs, s.cfg.Faults.(ControllerCutter).ReconnectController(ctx, id))
	}
	for _, id := range sortedIDs(s.delayed) {
		s.logDetail(OpLatency, id, latencyOff)
		errs = append(errs, s.cfg.Faults.(Delayer).SetLatency(ctx, id, 0, 0))
	}
	for _, id := range sortedIDs(s.ctrlDelayed) {
		s.logDetail(OpControllerLatency, id, latencyOff)
		errs = append(errs, s.cfg.Faults.(ControllerDelayer).SetControllerLatency(ctx, id, 0, 0))
	}
	for _, c := range slices.SortedFunc(maps.Keys(s.cuts), func(a, b [2]int32) int {
		return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1]))
	}) {
		s.logDetail(OpHealLink, c[0], linkDetail(c[1]))
		errs = append(errs, s.cfg.Faults.(LinkCutter).HealLink(ctx, c[0], c[1]))
	}
	for _, id := range sortedIDs(s.paused) {
		s.log(OpResumeReplication, id)
		errs = append(errs, s.cfg.Faults.ResumeReplication(ctx, id))
	}
	for _, id := range sortedIDs(s.isolated) {
		s.log(OpHeal, id)
		errs = append(errs, s.cfg.Faults.Heal(ctx, id))
	}
	for _, id := range sortedIDs(s.killed) {
		s.log(OpRestart, id)
		errs = append(errs, s.cfg.Faults.Restart(ctx, id))
	}
	clear(s.paused)
	clear(s.isolated)
	clear(s.killed)
	clear(s.frozen)
	clear(s.ctrlCut)
	clear(s.delayed)
	clear(s.ctrlDelayed)
	clear(s.cuts)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("verify: putting the cluster back: %w", err)
	}
	return nil
}

func sortedIDs(m map[int32]bool) []int32 {
	var ids []int32
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (s *schedule) log(op Op, broker int32) { s.logDetail(op, broker, "") }

// logDetail logs one fault operation and adds it to the run's events and timeline.
func (s *schedule) logDetail(op Op, broker int32, detail string) {
	s.tally.timeline.fault(op, broker, detail)
	s.cfg.Logger.Info("verify: fault", "op", op, "broker", broker, "detail", detail, "topic", s.cfg.Topic,
		"partition", s.part, "sent", s.sent.Load())
	s.events.add(op, broker, detail)
}

func (s *schedule) kill(ctx context.Context, id int32) error {
	s.prog.stage(fmt.Sprintf("kill broker %d", id))
	s.log(OpKill, id)
	if err := s.cfg.Faults.Kill(ctx, id); err != nil {
		return err
	}
	s.killed[id] = true
	return nil
}

func (s *schedule) restart(ctx context.Context, id int32) error {
	s.prog.stage(fmt.Sprintf("restart broker %d", id))
	s.log(OpRestart, id)
	if err := s.cfg.Faults.Restart(ctx, id); err != nil {
		return err
	}
	delete(s.killed, id)
	return nil
}

// waitSent waits until the producer has been handed n records, has sent
// everything, or ctx ends.
func (s *schedule) waitSent(ctx context.Context, n int) {
	s.waitUntil(ctx, func() bool { return s.sent.Load() >= int64(n) })
}

// waitAcked waits until at least one record has been acknowledged, the producer
// has sent everything, or ctx ends.
func (s *schedule) waitAcked(ctx context.Context) {
	s.waitUntil(ctx, func() bool { acked, _ := s.tally.counts(); return acked > 0 })
}

// waitUntil polls cond until it holds, the producer has sent everything, or
// ctx ends.
func (s *schedule) waitUntil(ctx context.Context, cond func() bool) {
	for !cond() {
		select {
		case <-ctx.Done():
			return
		case <-s.produced:
			return
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// waitAckedAlone waits until the target partition has acknowledged a
// record handed to the producer after the gate opened, or ctx ends, and
// returns how many it has acknowledged.
func (s *schedule) waitAckedAlone(ctx context.Context) int {
	for {
		n := s.tally.ackedFrom(s.part, s.cfg.Keys, s.gate.at)
		if n > 0 {
			return n
		}
		select {
		case <-ctx.Done():
			return n
		case <-s.produced:
			return s.tally.ackedFrom(s.part, s.cfg.Keys, s.gate.at)
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// gate holds the producer before the record at index at until released;
// at is -1 when the schedule does not need it.
type gate struct {
	at   int
	open chan struct{}
	once sync.Once
}

// newGate returns the gate the fault schedule of cfg needs:
// FaultPauseFollowersKillLeader holds the producer at a third of the
// workload until the followers are paused.
func newGate(cfg Config) *gate {
	g := &gate{at: -1, open: make(chan struct{})}
	if cfg.Fault == FaultPauseFollowersKillLeader {
		g.at = cfg.Records / 3
	}
	return g
}

// release lets the producer through; it may be called more than once.
func (g *gate) release() { g.once.Do(func() { close(g.open) }) }

// leader returns the target partition's leader as the injector sees it.
func (s *schedule) leader(ctx context.Context) (int32, error) {
	id, err := s.cfg.Faults.Leader(ctx, s.cfg.Topic, s.part)
	if err != nil {
		return -1, err
	}
	if id < 0 {
		return -1, fmt.Errorf("verify: partition %d of %s has no leader", s.part, s.cfg.Topic)
	}
	return id, nil
}

// replicas returns the target partition's leader and replicas.
func (s *schedule) replicas(ctx context.Context) (int32, []int32, error) {
	leader, err := s.leader(ctx)
	if err != nil {
		return -1, nil, err
	}
	md, err := s.adm.Metadata(ctx, s.cfg.Topic)
	if err != nil {
		return -1, nil, fmt.Errorf("verify: metadata: %w", err)
	}
	p, ok := md.Topics[s.cfg.Topic].Partitions[s.part]
	if !ok {
		return -1, nil, fmt.Errorf("verify: metadata: partition %d of %s missing", s.part, s.cfg.Topic)
	}
	return leader, p.Replicas, nil
}

// plainFollower picks a follower of the target partition, preferring one that leads
// no partition of the topic, so that killing it is only a follower's death.
func (s *schedule) plainFollower(ctx context.Context, leader int32, replicas []int32) (int32, error) {
	fs := followers(leader, replicas)
	if len(fs) == 0 {
		return -1, fmt.Errorf("verify: partition %d of %s has no follower (replicas %v)", s.part, s.cfg.Topic, replicas)
	}
	md, err := s.adm.Metadata(ctx, s.cfg.Topic)
	if err != nil {
		return fs[0], nil
	}
	leaders := map[int32]bool{}
	for _, p := range md.Topics[s.cfg.Topic].Partitions {
		leaders[p.Leader] = true
	}
	for _, f := range fs {
		if !leaders[f] {
			return f, nil
		}
	}
	return fs[0], nil
}

func followers(leader int32, replicas []int32) []int32 {
	return slices.DeleteFunc(slices.Clone(replicas), func(id int32) bool { return id == leader })
}

// waitNewLeader waits until the target partition is led by a broker other than old.
func (s *schedule) waitNewLeader(ctx context.Context, old int32) error {
	s.prog.stage(fmt.Sprintf("wait for a leader other than %d", old))
	ctx, cancel := context.WithTimeout(ctx, leaderTimeout)
	defer cancel()
	for {
		id, err := s.cfg.Faults.Leader(ctx, s.cfg.Topic, s.part)
		if err == nil && id >= 0 && id != old {
			s.cfg.Logger.Info("verify: new leader", "topic", s.cfg.Topic, "leader", id, "sent", s.sent.Load())
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("verify: partition %d of %s: no leader other than %d after %v (last: %d, %v): %w",
				s.part, s.cfg.Topic, old, leaderTimeout, id, err, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitOutOfISR waits, at most isrTimeout, until broker id has left
// the target partition's ISR; a cluster that keeps it longer still gets the
// follower back afterwards.
func (s *schedule) waitOutOfISR(ctx context.Context, id int32) {
	s.prog.stage(fmt.Sprintf("wait for %d to leave the ISR", id))
	ctx, cancel := context.WithTimeout(ctx, isrTimeout)
	defer cancel()
	for {
		md, err := s.adm.Metadata(ctx, s.cfg.Topic)
		if err == nil {
			if p, ok := md.Topics[s.cfg.Topic].Partitions[s.part]; ok && !slices.Contains(p.ISR, id) {
				return
			}
		}
		select {
		case <-ctx.Done():
			s.cfg.Logger.Warn("verify: killed follower still in the ISR", "broker", id, "after", isrTimeout)
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}
