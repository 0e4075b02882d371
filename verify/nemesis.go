package verify

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// FaultRandom is the fault of a run that follows a seeded random schedule
// ([NewSchedule], Config.Seed) instead of one of the named ones.
const FaultRandom Fault = "random"

// FaultKind names one kind of fault a random schedule strikes with. Each is
// a start operation and the operation that heals it.
type FaultKind string

// The fault kinds of random schedules.
const (
	// KindKill kills one or several brokers and restarts them.
	KindKill FaultKind = "kill"
	// KindPowerLoss cuts the power of one broker (several only when every
	// append is fsynced, Shape.Durable) and restarts it; it strikes only
	// once every replica is in the ISR.
	KindPowerLoss FaultKind = "power-loss"
	// KindPause freezes one or several brokers' processes and thaws them.
	KindPause FaultKind = "pause"
	// KindIsolate cuts one broker from the other brokers and the
	// controller, and heals it.
	KindIsolate FaultKind = "isolate"
	// KindOneWay cuts one broker's link to another, one way, and heals it.
	KindOneWay FaultKind = "one-way-partition"
	// KindControllerCut cuts one broker's link to the controller only, and
	// reconnects it.
	KindControllerCut FaultKind = "controller-partition"
	// KindLatency adds latency to every message one broker receives, and
	// removes it.
	KindLatency FaultKind = "latency"
	// KindSlowFollower pauses one broker's replica fetchers and resumes
	// them.
	KindSlowFollower FaultKind = "pause-replication"
)

// Kinds returns every fault kind, in the order a random schedule draws
// from.
func Kinds() []FaultKind {
	return []FaultKind{KindKill, KindPowerLoss, KindPause, KindIsolate, KindOneWay, KindControllerCut, KindLatency, KindSlowFollower}
}

// Ops returns the operation that starts the fault and the one that heals it.
func (k FaultKind) Ops() (start, heal Op) {
	switch k {
	case KindKill:
		return OpKill, OpRestart
	case KindPowerLoss:
		return OpPowerLoss, OpRestart
	case KindPause:
		return OpPause, OpResume
	case KindIsolate:
		return OpIsolate, OpHeal
	case KindOneWay:
		return OpCutLink, OpHealLink
	case KindControllerCut:
		return OpCutController, OpReconnectController
	case KindLatency:
		return OpLatency, OpLatency
	case KindSlowFollower:
		return OpPauseReplication, OpResumeReplication
	}
	return "", ""
}

// Target says which brokers a window of a random schedule strikes; it is
// resolved when the window opens.
type Target string

// The targets of a window.
const (
	// TargetLeader is the leader of the window's partition (and, for
	// several brokers, others in the window's order).
	TargetLeader Target = "leader"
	// TargetFollower is a follower of the window's partition.
	TargetFollower Target = "follower"
	// TargetController is the broker the cluster's metadata names as its
	// controller (the active KRaft controller of a combined-mode node; the
	// bundled cluster's controller runs apart from its brokers, so this is
	// the broker its metadata names); a window whose controller is not a
	// broker strikes the first broker in its order.
	TargetController Target = "controller"
	// TargetRandom is the first brokers of the window's order, a random
	// subset drawn from the seed.
	TargetRandom Target = "random"
)

// Window is one fault of a random schedule: what strikes, at whom, when
// (from the moment the workload starts) and for how long.
type Window struct {
	Start     time.Duration `json:"start_ns"`
	Hold      time.Duration `json:"hold_ns"`
	Kind      FaultKind     `json:"kind"`
	Target    Target        `json:"target"`
	Partition int32         `json:"partition"` // whose leader or follower is the target
	Count     int           `json:"count"`     // how many brokers it strikes
	// Order is every broker in a random order drawn from the seed: random
	// targets are its first Count brokers, and a target that needs more
	// brokers (a leader and another, the other end of a one-way cut) takes
	// them from it.
	Order   []int32       `json:"order"`
	Latency time.Duration `json:"latency_ns,omitempty"` // KindLatency's latency
	Jitter  time.Duration `json:"jitter_ns,omitempty"`  // and its jitter
}

// String describes the window, such as "1.2s+800ms kill leader of p0 (2 brokers)".
func (w Window) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v+%v %s ", w.Start.Round(10*time.Millisecond), w.Hold.Round(10*time.Millisecond), w.Kind)
	switch w.Target {
	case TargetLeader, TargetFollower:
		fmt.Fprintf(&b, "%s of p%d", w.Target, w.Partition)
	case TargetRandom:
		fmt.Fprintf(&b, "%v", w.Order[:w.Count])
	default:
		b.WriteString(string(w.Target))
	}
	if w.Kind == KindOneWay {
		b.WriteString(" -> other")
	}
	if w.Count > 1 && w.Target != TargetRandom {
		fmt.Fprintf(&b, " (%d brokers)", w.Count)
	}
	if w.Kind == KindLatency {
		fmt.Fprintf(&b, " %v±%v", w.Latency.Round(time.Millisecond), w.Jitter.Round(time.Millisecond))
	}
	return b.String()
}

// Schedule is a random fault schedule: windows one after another, each
// healed before the next opens, so the cluster always ends healed.
type Schedule struct {
	Seed    int64    `json:"seed"`
	Windows []Window `json:"windows"`
}

// String lists the windows, separated by "; ", or "no faults".
func (s Schedule) String() string {
	if len(s.Windows) == 0 {
		return "no faults"
	}
	parts := make([]string, len(s.Windows))
	for i, w := range s.Windows {
		parts[i] = w.String()
	}
	return strings.Join(parts, "; ")
}

// Ops returns the operations the schedule uses, in the order of [Ops].
func (s Schedule) Ops() []Op {
	used := map[Op]bool{}
	for _, w := range s.Windows {
		start, heal := w.Kind.Ops()
		used[start], used[heal] = true, true
	}
	return slices.DeleteFunc(Ops(), func(op Op) bool { return !used[op] })
}

// Shape is what a random schedule is drawn for: the cluster's brokers, the
// topic's partitions, the operations the fault injector offers, and how
// long the faults may go on.
type Shape struct {
	Brokers    []int32
	Partitions int32
	// Ops are the operations the injector supports ([SupportedOps]); a kind
	// whose start or heal operation is missing is never drawn.
	Ops []Op
	// Span is how long the schedule lasts; windows open and heal within it.
	Span time.Duration
	// Durable says every append is fsynced (flush.messages=1): then several
	// brokers may lose power at once, which otherwise may lose
	// acknowledged records under any preset.
	Durable bool
}

// Density of random schedules: a window opens minGap to maxGap after the
// previous one opened, while fewer than maxInForce are in force, and lasts
// minHold to maxHold: half of the windows at most a second (shorter than the
// cluster's timeouts), half longer (the controller fences a broker, a
// follower leaves the ISR).
const (
	minGap     = 150 * time.Millisecond
	maxGap     = time.Second
	minHold    = 200 * time.Millisecond
	maxHold    = 3 * time.Second
	maxInForce = 2
)

// NewSchedule draws the random schedule of seed for the cluster shape sh.
// It is a pure function: the same seed and shape give the same schedule.
// The density is bounded: at most two windows are in force at once (a power
// loss only alone), each opens 150 ms to 1 s after the previous one and
// lasts 200 ms to 3 s within the span. Each window draws a kind among those
// sh.Ops can carry out, a target (leader, follower, controller or a random
// subset), a partition and its brokers. A window that finds its brokers
// already struck by the other window in force strikes the others, or
// nothing (see [Window]).
func NewSchedule(seed int64, sh Shape) Schedule {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6e656d65736973)) // "nemesis"
	s := Schedule{Seed: seed}
	kinds := drawableKinds(sh)
	if len(kinds) == 0 || len(sh.Brokers) == 0 {
		return s
	}
	between := func(lo, hi time.Duration) time.Duration {
		if hi <= lo {
			return lo
		}
		return lo + time.Duration(rng.Int64N(int64(hi-lo)))
	}
	n := len(sh.Brokers)
	var ends []time.Duration // of the windows in force
	exclusiveUntil := time.Duration(0)
	for t := between(minGap, maxGap); t+minHold <= sh.Span; t += between(minGap, maxGap) {
		t = max(t, exclusiveUntil)
		ends = slices.DeleteFunc(ends, func(e time.Duration) bool { return e <= t })
		if len(ends) >= maxInForce {
			t = slices.Min(ends) // the next draw opens after the first one ends
			continue
		}
		w := Window{Start: t, Kind: kinds[rng.IntN(len(kinds))], Count: 1}
		if rng.IntN(2) == 0 {
			w.Hold = between(minHold, time.Second)
		} else {
			w.Hold = between(time.Second, maxHold)
		}
		if w.Kind == KindPowerLoss {
			// A power loss strikes alone: after the windows in force end, and
			// before any other opens.
			if len(ends) > 0 {
				w.Start = slices.Max(ends) + minGap
			}
		}
		w.Hold = min(w.Hold, sh.Span-w.Start)
		if w.Hold < minHold {
			break
		}
		w.Partition = int32(rng.IntN(int(max(1, sh.Partitions))))
		w.Order = slices.Clone(sh.Brokers)
		rng.Shuffle(n, func(i, j int) { w.Order[i], w.Order[j] = w.Order[j], w.Order[i] })
		targets := []Target{TargetLeader, TargetFollower, TargetController, TargetRandom}
		if n < 2 {
			targets = []Target{TargetLeader, TargetRandom}
		}
		w.Target = targets[rng.IntN(len(targets))]
		switch w.Kind {
		case KindKill, KindPause:
			if n > 2 && rng.IntN(3) == 0 {
				w.Count = 2 + rng.IntN(n-2) // several brokers, never all
			}
		case KindPowerLoss:
			if sh.Durable && n > 2 && rng.IntN(3) == 0 {
				w.Count = 2 + rng.IntN(n-2)
			}
			exclusiveUntil = w.Start + w.Hold + minGap
		case KindLatency:
			w.Latency = between(20*time.Millisecond, 300*time.Millisecond).Round(time.Millisecond)
			w.Jitter = w.Latency / 2
		}
		s.Windows = append(s.Windows, w)
		ends = append(ends, w.Start+w.Hold)
		t = w.Start
	}
	return s
}

// drawableKinds returns the kinds whose operations sh offers and whose
// targets the cluster has.
func drawableKinds(sh Shape) []FaultKind {
	var out []FaultKind
	for _, k := range Kinds() {
		start, heal := k.Ops()
		if !slices.Contains(sh.Ops, start) || !slices.Contains(sh.Ops, heal) {
			continue
		}
		if k == KindOneWay && len(sh.Brokers) < 2 {
			continue
		}
		out = append(out, k)
	}
	return out
}

// resolve returns the brokers window w strikes, given the partition's
// leader and replicas, the controller named by the metadata (-1 if none)
// and the brokers other windows in force hold (left out: the window strikes
// the next free ones in its order instead, or nothing), and for a one-way
// cut the broker the first one can no longer reach (else -1).
func (w Window) resolve(leader int32, replicas []int32, controller int32, busy map[int32]bool) (brokers []int32, peer int32) {
	first := int32(-1)
	switch w.Target {
	case TargetLeader:
		first = leader
	case TargetFollower:
		for _, id := range w.Order {
			if id != leader && slices.Contains(replicas, id) && !busy[id] {
				first = id
				break
			}
		}
	case TargetController:
		first = controller
	}
	if !slices.Contains(w.Order, first) || busy[first] {
		first = -1
		for _, id := range w.Order {
			if !busy[id] {
				first = id
				break
			}
		}
		if first < 0 {
			return nil, -1
		}
	}
	brokers = []int32{first}
	for _, id := range w.Order {
		if len(brokers) >= w.Count {
			break
		}
		if id != first && !busy[id] {
			brokers = append(brokers, id)
		}
	}
	peer = -1
	if w.Kind == KindOneWay {
		// A follower is cut from its leader; anyone else from a replica of
		// the partition when there is one.
		switch {
		case w.Target == TargetFollower && leader >= 0 && leader != first:
			peer = leader
		default:
			for _, id := range w.Order {
				if id != first && (peer < 0 || slices.Contains(replicas, id) && !slices.Contains(replicas, peer)) {
					peer = id
				}
			}
		}
	}
	return brokers, peer
}
