package verify

import (
	"cmp"
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
	// KindControllerLatency adds latency to one broker's link to the
	// controller only (its heartbeats, its ISR changes, the metadata it
	// receives), and removes it: an ISR change it proposes stays pending
	// that much longer.
	KindControllerLatency FaultKind = "controller-latency"
)

// Kinds returns every fault kind, in the order a random schedule draws
// from.
func Kinds() []FaultKind {
	return []FaultKind{KindKill, KindPowerLoss, KindPause, KindIsolate, KindOneWay, KindControllerCut, KindLatency, KindSlowFollower,
		KindControllerLatency}
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
	case KindControllerLatency:
		return OpControllerLatency, OpControllerLatency
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
	// TargetSuccessor is the follower an election prefers when the leader
	// fails: the first other replica in the partition's replica order (the
	// controller elects the first live ISR member in that order, as Kafka's
	// does). The ISR-churn family ([FamilyISRChurn]) aims at it.
	TargetSuccessor Target = "successor"
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
	Latency time.Duration `json:"latency_ns,omitempty"` // KindLatency's and KindControllerLatency's latency
	Jitter  time.Duration `json:"jitter_ns,omitempty"`  // and its jitter
	// Family names the chain of windows this one belongs to, such as
	// [FamilyISRChurn]; empty for a window drawn alone.
	Family string `json:"family,omitempty"`
}

// String describes the window, such as "1.2s+800ms kill leader of p0 (2 brokers)".
func (w Window) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v+%v %s ", w.Start.Round(10*time.Millisecond), w.Hold.Round(10*time.Millisecond), w.Kind)
	switch w.Target {
	case TargetLeader, TargetFollower, TargetSuccessor:
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
	if w.Kind == KindLatency || w.Kind == KindControllerLatency {
		fmt.Fprintf(&b, " %v±%v", w.Latency.Round(time.Millisecond), w.Jitter.Round(time.Millisecond))
	}
	if w.Family != "" {
		fmt.Fprintf(&b, " [%s]", w.Family)
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
	// ReplicaLagMax is the cluster's replica.lag.time.max.ms: how long a
	// stalled follower stays in the ISR. Zero means 2s, the bundled
	// cluster's ([FamilyISRChurn] stalls a follower longer than that).
	ReplicaLagMax time.Duration
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
// nothing (see [Window]). One schedule in two whose injector and span allow
// it also carries one [FamilyISRChurn] chain, alone at a random time: its
// four windows overlap (three in force at once).
func NewSchedule(seed int64, sh Shape) Schedule {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6e656d65736973)) // "nemesis"
	s := Schedule{Seed: seed}
	kinds := drawableKinds(sh)
	if len(kinds) == 0 || len(sh.Brokers) == 0 {
		return s
	}
	// The chain comes from its own stream, so that it does not shift the
	// other draws.
	crng := rand.New(rand.NewPCG(uint64(seed), 0x69737263687572)) // "isrchur"
	chainAt, chain := time.Duration(-1), []Window(nil)
	if crng.IntN(isrChurnChance) == 0 {
		chain = drawISRChurn(crng, sh)
		if room := sh.Span - chainEnd(chain) - minGap; chain != nil && room > minGap {
			chainAt = minGap + time.Duration(crng.Int64N(int64(room-minGap)))
		}
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
		if chainAt >= 0 && t+minHold > chainAt-minGap {
			// The chain's turn: every window drawn so far ends by now.
			for _, w := range chain {
				w.Start += chainAt
				s.Windows = append(s.Windows, w)
			}
			ends, exclusiveUntil = nil, chainAt+chainEnd(chain)+minGap
			t, chainAt = exclusiveUntil, -1
		}
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
		if chainAt >= 0 {
			w.Hold = min(w.Hold, chainAt-minGap-w.Start) // it heals before the chain
		}
		if w.Hold < minHold {
			if chainAt >= 0 {
				t = chainAt // the chain next
				continue
			}
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
		case KindControllerLatency:
			w.Latency = between(100*time.Millisecond, maxCtrlLatency).Round(time.Millisecond)
			w.Jitter = w.Latency / 10
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
	case TargetSuccessor:
		for _, id := range replicas {
			if id != leader && !busy[id] {
				first = id
				break
			}
		}
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

// FamilyISRChurn is a chain of windows aimed at a pending ISR change (Kafka's
// KIP-497 "maximal ISR" case, issue 11 item 1): the successor's replication
// stalls until it leaves the ISR; the leader's controller link slows down;
// the successor resumes, catches up and the leader proposes it back, the
// proposal in flight on the slow link; the successor stalls again before the
// change commits, while the leader goes on acknowledging; the change commits
// and the leader is killed soon after, so the successor, in the ISR and first
// in replica order, is elected. A leader that counts only the committed ISR
// toward its high watermark has acknowledged records the successor lacks.
const FamilyISRChurn = "isr-churn"

// maxCtrlLatency bounds a drawn controller-link latency: a broker's
// heartbeats travel it one at a time, and beyond about half the bundled
// cluster's session timeout (1s) the controller fences the broker.
const maxCtrlLatency = 600 * time.Millisecond

// isrChurnOps are the operations [FamilyISRChurn] needs.
var isrChurnOps = []Op{OpPauseReplication, OpResumeReplication, OpControllerLatency, OpKill, OpRestart}

// isrChurnChance is one in how many schedules carries an ISR-churn chain
// when the injector and the span allow it.
const isrChurnChance = 2

// drawISRChurn draws the windows of one [FamilyISRChurn] chain, starting at
// 0, on partition p of sh, or nil when sh cannot carry it out. Its times
// follow the cluster's: the first stall outlasts the lag bound, the second
// starts after the successor has caught up and before the slow link has
// carried the join, the kill lands after the join committed and before the
// leader could drop the successor again.
func drawISRChurn(rng *rand.Rand, sh Shape) []Window {
	if len(sh.Brokers) < 3 || len(missingOpsOf(sh.Ops, isrChurnOps)) > 0 {
		return nil
	}
	between := func(lo, hi time.Duration) time.Duration {
		return lo + time.Duration(rng.Int64N(int64(hi-lo)))
	}
	lag := cmp.Or(sh.ReplicaLagMax, 2*time.Second)
	p := int32(rng.IntN(int(max(1, sh.Partitions))))
	win := func(start, hold time.Duration, k FaultKind, tg Target) Window {
		order := slices.Clone(sh.Brokers)
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		return Window{Start: start, Hold: hold, Kind: k, Target: tg, Partition: p, Count: 1, Order: order, Family: FamilyISRChurn}
	}
	out := lag + between(500*time.Millisecond, 1500*time.Millisecond) // the first stall ends
	d := between(350*time.Millisecond, maxCtrlLatency).Round(time.Millisecond)
	stall := out + between(150*time.Millisecond, d-100*time.Millisecond) // the second stall starts
	kill := out + d + between(200*time.Millisecond, 500*time.Millisecond)
	slow := out - between(100*time.Millisecond, 300*time.Millisecond)
	w := []Window{
		win(0, out, KindSlowFollower, TargetSuccessor),
		win(slow, kill-150*time.Millisecond-slow, KindControllerLatency, TargetLeader), // heals before the kill strikes the leader; the join in flight still travels it
		win(stall, kill-stall+between(300*time.Millisecond, time.Second), KindSlowFollower, TargetSuccessor),
		win(kill, between(500*time.Millisecond, 1500*time.Millisecond), KindKill, TargetLeader),
	}
	w[1].Latency, w[1].Jitter = d, d/10
	return w
}

// chainEnd is when the last window of a chain drawn from 0 heals.
func chainEnd(ws []Window) time.Duration {
	var end time.Duration
	for _, w := range ws {
		end = max(end, w.Start+w.Hold)
	}
	return end
}

// missingOpsOf returns the operations of need that have lacks.
func missingOpsOf(have, need []Op) []Op {
	return slices.DeleteFunc(slices.Clone(need), func(op Op) bool { return slices.Contains(have, op) })
}
