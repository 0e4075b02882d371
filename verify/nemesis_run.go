package verify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// FaultEvent is one fault operation a run carried out on one broker.
type FaultEvent struct {
	At     time.Duration `json:"at_ns"` // since the workload started
	Op     Op            `json:"op"`
	Broker int32         `json:"broker"`
	// Detail is the other end of a link cut ("to 2") or the latency set.
	Detail string `json:"detail,omitempty"`
}

// String formats the event as "1.25s kill 2".
func (e FaultEvent) String() string {
	s := fmt.Sprintf("%v %s %d", e.At.Round(10*time.Millisecond), e.Op, e.Broker)
	if e.Detail != "" {
		s += " " + e.Detail
	}
	return s
}

// eventLog collects a run's fault events; the progress reporter reads it
// while the schedule writes it.
type eventLog struct {
	mu     sync.Mutex
	origin time.Time
	events []FaultEvent
}

func newEventLog() *eventLog { return &eventLog{origin: time.Now()} }

// start sets the origin of the events' times: the moment the workload starts.
func (l *eventLog) start(t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.origin = t
}

func (l *eventLog) add(op Op, broker int32, detail string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, FaultEvent{At: time.Since(l.origin), Op: op, Broker: broker, Detail: detail})
}

func (l *eventLog) snapshot() (time.Time, []FaultEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.origin, slices.Clone(l.events)
}

// active returns the faults in force now, as in [ActiveFaults].
func (l *eventLog) active() []string {
	origin, evs := l.snapshot()
	return ActiveFaults(evs, time.Since(origin))
}

func linkDetail(to int32) string { return "to " + strconv.Itoa(int(to)) }

// ActiveFaults returns the faults events leave in force at time at (since
// the workload started), such as "kill 1" or "cut-link 0 to 2", in the
// order they struck.
func ActiveFaults(events []FaultEvent, at time.Duration) []string {
	type key struct {
		op     Op
		broker int32
		detail string
	}
	var on []key
	drop := func(broker int32, detail string, ops ...Op) {
		on = slices.DeleteFunc(on, func(k key) bool {
			return k.broker == broker && slices.Contains(ops, k.op) && (detail == "" || k.detail == detail)
		})
	}
	for _, e := range events {
		if e.At > at {
			break
		}
		switch e.Op {
		case OpRestart:
			drop(e.Broker, "", OpKill, OpPowerLoss)
		case OpHeal:
			drop(e.Broker, "", OpIsolate)
		case OpResume:
			drop(e.Broker, "", OpPause)
		case OpResumeReplication:
			drop(e.Broker, "", OpPauseReplication)
		case OpReconnectController:
			drop(e.Broker, "", OpCutController)
		case OpHealLink:
			drop(e.Broker, e.Detail, OpCutLink)
		case OpLatency, OpControllerLatency:
			drop(e.Broker, "", e.Op)
			lat, _, _ := strings.Cut(e.Detail, "±")
			if d, err := time.ParseDuration(lat); err == nil && d > 0 {
				on = append(on, key{e.Op, e.Broker, e.Detail})
			}
		default:
			on = append(on, key{e.Op, e.Broker, e.Detail})
		}
	}
	out := make([]string, len(on))
	for i, k := range on {
		out[i] = strings.TrimSpace(fmt.Sprintf("%s %d %s", k.op, k.broker, k.detail))
	}
	return out
}

// runRandom carries out the random schedule: each window opens at its
// start (after the workload started), strikes the brokers its target names
// then (leaving out those another window in force holds), and heals them
// when its hold has passed. Fault operations go to the injector one at a
// time. The first error stops the schedule.
func (s *schedule) runRandom(ctx context.Context) error {
	origin, _ := s.events.snapshot()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu   sync.Mutex // serializes the fault operations and guards busy
		busy = map[int32]bool{}
		wg   sync.WaitGroup
	)
	n := len(s.nemesis.Windows)
	for i, w := range s.nemesis.Windows {
		if err := sleepUntil(ctx, origin.Add(w.Start)); err != nil {
			break
		}
		if w.Kind == KindPowerLoss {
			// A power loss strikes a healthy partition: with a replica out of the
			// ISR, losing the unsynced tail of the rest may lose records.
			wg.Wait()
			s.prog.stage(fmt.Sprintf("window %d/%d: wait for a full ISR", i+1, n))
			if err := waitHealthy(ctx, s.adm, s.cfg.Topic, healthyTimeout); err != nil {
				cancel(err)
				break
			}
		}
		mu.Lock()
		s.part = w.Partition
		leader, replicas, controller := s.targets(ctx)
		brokers, peer := w.resolve(leader, replicas, controller, busy)
		if len(brokers) == 0 {
			s.cfg.Logger.Info("verify: window skipped: its brokers are struck already", "window", w.String())
			mu.Unlock()
			continue
		}
		for _, id := range brokers {
			busy[id] = true
		}
		s.prog.stage(fmt.Sprintf("window %d/%d: %s %v", i+1, n, w.Kind, brokers))
		err := s.strike(ctx, w, brokers, peer)
		mu.Unlock()
		if err != nil {
			cancel(fmt.Errorf("verify: seed %d, window %d (%s): %w", s.nemesis.Seed, i+1, w, err))
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = sleepUntil(ctx, time.Now().Add(w.Hold)) // on cancel, restore heals
			if ctx.Err() != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			s.part = w.Partition
			if err := s.heal(ctx, w, brokers, peer); err != nil {
				cancel(fmt.Errorf("verify: seed %d, window %d (%s): healing: %w", s.nemesis.Seed, i+1, w, err))
				return
			}
			for _, id := range brokers {
				delete(busy, id)
			}
			s.prog.stage(fmt.Sprintf("window %d/%d healed", i+1, n))
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// targets returns what a window's target is resolved against: the target
// partition's leader (-1 if it has none or the injector cannot tell), its
// replicas and the controller the metadata named when the schedule was
// drawn (-1 if none). The replicas come from the injector when it can tell
// (the bundled cluster, its control API), otherwise from a Metadata request
// bounded to a second: a paused broker answers nothing.
func (s *schedule) targets(ctx context.Context) (leader int32, replicas []int32, controller int32) {
	leader, controller = -1, s.controller
	if id, err := s.cfg.Faults.Leader(ctx, s.cfg.Topic, s.part); err == nil {
		leader = id
	}
	if rd, ok := s.cfg.Faults.(replicaDescriber); ok {
		if r, err := rd.replicas(ctx, s.cfg.Topic, s.part); err == nil {
			return leader, r, controller
		}
	}
	mctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	md, err := s.adm.Metadata(mctx, s.cfg.Topic)
	if err != nil {
		return leader, nil, controller
	}
	if p, ok := md.Topics[s.cfg.Topic].Partitions[s.part]; ok {
		replicas = p.Replicas
	}
	return leader, replicas, controller
}

// replicaDescriber is implemented by the injectors that know a partition's
// replicas without asking a broker.
type replicaDescriber interface {
	replicas(ctx context.Context, topic string, partition int32) ([]int32, error)
}

func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

// strike opens window w on brokers (and peer, a one-way cut's other end).
func (s *schedule) strike(ctx context.Context, w Window, brokers []int32, peer int32) error {
	fi := s.cfg.Faults
	for _, id := range brokers {
		var err error
		switch w.Kind {
		case KindKill:
			err = s.kill(ctx, id)
		case KindPowerLoss:
			continue // all at once, below
		case KindPause:
			s.log(OpPause, id)
			if err = fi.(Pauser).Pause(ctx, id); err == nil {
				s.frozen[id] = true
			}
		case KindIsolate:
			s.log(OpIsolate, id)
			if err = fi.Isolate(ctx, id); err == nil {
				s.isolated[id] = true
			}
		case KindOneWay:
			if peer < 0 {
				continue
			}
			s.logDetail(OpCutLink, id, linkDetail(peer))
			if err = fi.(LinkCutter).CutLink(ctx, id, peer); err == nil {
				s.cuts[[2]int32{id, peer}] = true
			}
		case KindControllerCut:
			s.log(OpCutController, id)
			if err = fi.(ControllerCutter).CutController(ctx, id); err == nil {
				s.ctrlCut[id] = true
			}
		case KindLatency:
			s.logDetail(OpLatency, id, w.Latency.Round(time.Millisecond).String()+"±"+w.Jitter.Round(time.Millisecond).String())
			if err = fi.(Delayer).SetLatency(ctx, id, w.Latency, w.Jitter); err == nil {
				s.delayed[id] = true
			}
		case KindControllerLatency:
			s.logDetail(OpControllerLatency, id, w.Latency.Round(time.Millisecond).String()+"±"+w.Jitter.Round(time.Millisecond).String())
			if err = fi.(ControllerDelayer).SetControllerLatency(ctx, id, w.Latency, w.Jitter); err == nil {
				s.ctrlDelayed[id] = true
			}
		case KindSlowFollower:
			s.log(OpPauseReplication, id)
			if err = fi.PauseReplication(ctx, id); err == nil {
				s.paused[id] = true
			}
		default:
			err = fmt.Errorf("%w: fault kind %q", ErrUnsupported, w.Kind)
		}
		if err != nil {
			return err
		}
	}
	if w.Kind == KindPowerLoss {
		for _, id := range brokers {
			s.log(OpPowerLoss, id)
		}
		err := fi.(PowerLosser).PowerLoss(ctx, brokers...)
		for _, id := range brokers {
			s.killed[id] = true // restarted by heal or restore even if the power loss failed half-way
		}
		return err
	}
	return nil
}

// heal closes window w: it undoes what strike did.
func (s *schedule) heal(ctx context.Context, w Window, brokers []int32, peer int32) error {
	fi := s.cfg.Faults
	for _, id := range brokers {
		var err error
		switch w.Kind {
		case KindKill, KindPowerLoss:
			err = s.restart(ctx, id)
		case KindPause:
			s.log(OpResume, id)
			if err = fi.(Pauser).Resume(ctx, id); err == nil {
				delete(s.frozen, id)
			}
		case KindIsolate:
			s.log(OpHeal, id)
			if err = fi.Heal(ctx, id); err == nil {
				delete(s.isolated, id)
			}
		case KindOneWay:
			if peer < 0 {
				continue
			}
			s.logDetail(OpHealLink, id, linkDetail(peer))
			if err = fi.(LinkCutter).HealLink(ctx, id, peer); err == nil {
				delete(s.cuts, [2]int32{id, peer})
			}
		case KindControllerCut:
			s.log(OpReconnectController, id)
			if err = fi.(ControllerCutter).ReconnectController(ctx, id); err == nil {
				delete(s.ctrlCut, id)
			}
		case KindLatency:
			s.logDetail(OpLatency, id, latencyOff)
			if err = fi.(Delayer).SetLatency(ctx, id, 0, 0); err == nil {
				delete(s.delayed, id)
			}
		case KindControllerLatency:
			s.logDetail(OpControllerLatency, id, latencyOff)
			if err = fi.(ControllerDelayer).SetControllerLatency(ctx, id, 0, 0); err == nil {
				delete(s.ctrlDelayed, id)
			}
		case KindSlowFollower:
			s.log(OpResumeReplication, id)
			if err = fi.ResumeReplication(ctx, id); err == nil {
				delete(s.paused, id)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}
