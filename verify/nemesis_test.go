package verify

import (
	"reflect"
	"slices"
	"testing"
	"time"
)

func testShape() Shape {
	return Shape{Brokers: []int32{0, 1, 2}, Partitions: 2, Ops: Ops(), Span: 10 * time.Second}
}

func TestNewScheduleReplaysTheSameScheduleForTheSameSeed(t *testing.T) {
	t.Parallel()
	sh := testShape()
	seen := map[string]int64{}
	for seed := int64(0); seed < 50; seed++ {
		a, b := NewSchedule(seed, sh), NewSchedule(seed, sh)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("seed %d: two generations differ:\n%s\n%s", seed, a, b)
		}
		if len(a.Windows) == 0 {
			t.Fatalf("seed %d: no window in a %v span", seed, sh.Span)
		}
		if other, dup := seen[a.String()]; dup {
			t.Fatalf("seeds %d and %d give the same schedule %s", other, seed, a)
		}
		seen[a.String()] = seed
	}
}

func TestNewScheduleBoundsItsWindowsAndCoversEveryKindAndTarget(t *testing.T) {
	t.Parallel()
	sh := testShape()
	kinds, targets := map[FaultKind]bool{}, map[Target]bool{}
	several, overlap := false, false
	chains := 0
	for seed := int64(0); seed < 200; seed++ {
		s := NewSchedule(seed, sh)
		var ends []time.Duration
		for i := 0; i < len(s.Windows); i++ {
			w := s.Windows[i]
			kinds[w.Kind], targets[w.Target] = true, true
			if w.Family != "" {
				checkISRChurn(t, seed, s, i, ends, sh.Span)
				chains++
				i += 3
				ends = nil
				continue
			}
			if w.Hold < minHold || w.Hold > maxHold || w.Start+w.Hold > sh.Span || i > 0 && w.Start < s.Windows[i-1].Start+minGap {
				t.Fatalf("seed %d window %d (%s): leaves the bounds", seed, i, w)
			}
			ends = slices.DeleteFunc(ends, func(e time.Duration) bool { return e <= w.Start })
			if len(ends) >= maxInForce || w.Kind == KindPowerLoss && len(ends) > 0 {
				t.Fatalf("seed %d window %d (%s): opens with %d windows in force\n%s", seed, i, w, len(ends), s)
			}
			if i > 0 && s.Windows[i-1].Kind == KindPowerLoss && w.Start < s.Windows[i-1].Start+s.Windows[i-1].Hold {
				t.Fatalf("seed %d window %d (%s): opens during a power loss\n%s", seed, i, w, s)
			}
			ends = append(ends, w.Start+w.Hold)
			overlap = overlap || len(ends) > 1
			if w.Count < 1 || w.Count >= len(sh.Brokers) {
				t.Fatalf("seed %d window %d (%s): strikes %d of %d brokers", seed, i, w, w.Count, len(sh.Brokers))
			}
			if w.Kind == KindPowerLoss && w.Count != 1 {
				t.Fatalf("seed %d window %d (%s): several brokers lose power without fsync", seed, i, w)
			}
			several = several || w.Count > 1
			if w.Partition < 0 || w.Partition >= sh.Partitions {
				t.Fatalf("seed %d window %d: partition %d", seed, i, w.Partition)
			}
			if got := slices.Sorted(slices.Values(w.Order)); !slices.Equal(got, sh.Brokers) {
				t.Fatalf("seed %d window %d: order %v is not the brokers", seed, i, w.Order)
			}
		}
	}
	for _, k := range Kinds() {
		if !kinds[k] {
			t.Errorf("no schedule in 200 seeds uses %s", k)
		}
	}
	for _, tg := range []Target{TargetLeader, TargetFollower, TargetController, TargetRandom, TargetSuccessor} {
		if !targets[tg] {
			t.Errorf("no schedule in 200 seeds targets %s", tg)
		}
	}
	if chains < 50 {
		t.Errorf("%d of 200 schedules carry an ISR-churn chain, want about half", chains)
	}
	if !several || !overlap {
		t.Errorf("in 200 seeds: a window striking several brokers %v, two windows in force at once %v", several, overlap)
	}
}

// checkISRChurn checks the ISR-churn chain that starts at window i of s: its
// four windows in their order and times, alone (the windows before it ended,
// the next one opens after it).
func checkISRChurn(t *testing.T, seed int64, s Schedule, i int, ends []time.Duration, span time.Duration) {
	t.Helper()
	if i+4 > len(s.Windows) {
		t.Fatalf("seed %d: a chain of %d windows\n%s", seed, len(s.Windows)-i, s)
	}
	c := s.Windows[i : i+4]
	want := []struct {
		k  FaultKind
		tg Target
	}{{KindSlowFollower, TargetSuccessor}, {KindControllerLatency, TargetLeader}, {KindSlowFollower, TargetSuccessor}, {KindKill, TargetLeader}}
	for j, w := range c {
		if w.Family != FamilyISRChurn || w.Kind != want[j].k || w.Target != want[j].tg || w.Start+w.Hold > span {
			t.Fatalf("seed %d: chain window %d is %s\n%s", seed, j, w, s)
		}
	}
	out, slow, stall, kill := c[0].Start+c[0].Hold, c[1], c[2], c[3]
	switch {
	case c[0].Hold <= 2*time.Second:
		t.Fatalf("seed %d: the first stall (%s) does not outlast the lag bound", seed, c[0])
	case slow.Start >= out || slow.Start+slow.Hold >= kill.Start || slow.Latency > maxCtrlLatency:
		t.Fatalf("seed %d: the slow link (%s) does not cover the rejoin, or is still on at the kill (%s)", seed, slow, kill)
	case stall.Start <= out || stall.Start >= out+slow.Latency || stall.Start+stall.Hold <= kill.Start:
		t.Fatalf("seed %d: the second stall (%s) is not within the join's flight, or ends before the kill", seed, stall)
	case kill.Start <= out+slow.Latency:
		t.Fatalf("seed %d: the kill (%s) strikes before the join could commit", seed, kill)
	}
	for _, e := range ends {
		if e > c[0].Start {
			t.Fatalf("seed %d: a window still in force when the chain opens\n%s", seed, s)
		}
	}
	if i+4 < len(s.Windows) && s.Windows[i+4].Start < chainEnd(c) {
		t.Fatalf("seed %d: a window opens during the chain\n%s", seed, s)
	}
}

func TestNewScheduleDrawsOnlyWhatTheInjectorCanDo(t *testing.T) {
	t.Parallel()
	sh := testShape()
	sh.Ops = []Op{OpKill, OpRestart, OpIsolate} // isolate without heal is not drawable
	for seed := int64(0); seed < 50; seed++ {
		for _, w := range NewSchedule(seed, sh).Windows {
			if w.Kind != KindKill {
				t.Fatalf("seed %d: window %s, but only kill and restart are supported", seed, w)
			}
		}
	}
	sh.Ops = []Op{OpKill}
	if s := NewSchedule(1, sh); len(s.Windows) != 0 {
		t.Fatalf("kill without restart: schedule %s, want none", s)
	}
	if got := NewSchedule(3, testShape()).Ops(); len(got) == 0 || len(missingOps(ClusterFaults(nil), got)) != 0 {
		t.Fatalf("ClusterFaults lacks ops of a random schedule: %v", missingOps(ClusterFaults(nil), got))
	}
}

func TestWindowResolvesItsTargetAtRunTime(t *testing.T) {
	t.Parallel()
	replicas := []int32{0, 1, 2}
	tests := []struct {
		w        Window
		leader   int32
		ctrl     int32
		want     []int32
		wantPeer int32
		busy     map[int32]bool
	}{
		{Window{Kind: KindKill, Target: TargetLeader, Count: 1, Order: []int32{2, 0, 1}}, 1, 0, []int32{1}, -1, nil},
		{Window{Kind: KindKill, Target: TargetLeader, Count: 2, Order: []int32{2, 0, 1}}, 1, 0, []int32{1, 2}, -1, nil},
		{Window{Kind: KindPause, Target: TargetFollower, Count: 1, Order: []int32{1, 0, 2}}, 1, 0, []int32{0}, -1, nil},
		{Window{Kind: KindIsolate, Target: TargetController, Count: 1, Order: []int32{1, 0, 2}}, 1, 2, []int32{2}, -1, nil},
		{Window{Kind: KindIsolate, Target: TargetController, Count: 1, Order: []int32{1, 0, 2}}, 1, 3000, []int32{1}, -1, nil},
		{Window{Kind: KindKill, Target: TargetLeader, Count: 1, Order: []int32{2, 0, 1}}, -1, 0, []int32{2}, -1, nil},
		{Window{Kind: KindKill, Target: TargetRandom, Count: 2, Order: []int32{2, 0, 1}}, 1, 0, []int32{2, 0}, -1, nil},
		{Window{Kind: KindOneWay, Target: TargetFollower, Count: 1, Order: []int32{2, 0, 1}}, 1, 0, []int32{2}, 1, nil},
		{Window{Kind: KindOneWay, Target: TargetLeader, Count: 1, Order: []int32{1, 0, 2}}, 1, 0, []int32{1}, 0, nil},
		// Brokers another window holds are left out.
		{Window{Kind: KindKill, Target: TargetLeader, Count: 2, Order: []int32{2, 0, 1}}, 1, 0, []int32{0}, -1, map[int32]bool{1: true, 2: true}},
		{Window{Kind: KindPause, Target: TargetFollower, Count: 1, Order: []int32{1, 0, 2}}, 1, 0, []int32{2}, -1, map[int32]bool{0: true}},
		{Window{Kind: KindKill, Target: TargetRandom, Count: 1, Order: []int32{2, 0, 1}}, 1, 0, nil, -1, map[int32]bool{0: true, 1: true, 2: true}},
		// The successor is the first other replica in replica order, whatever the window's order.
		{Window{Kind: KindSlowFollower, Target: TargetSuccessor, Count: 1, Order: []int32{2, 1, 0}}, 0, 0, []int32{1}, -1, nil},
		{Window{Kind: KindSlowFollower, Target: TargetSuccessor, Count: 1, Order: []int32{2, 1, 0}}, 1, 0, []int32{0}, -1, nil},
	}
	for i, tt := range tests {
		got, peer := tt.w.resolve(tt.leader, replicas, tt.ctrl, tt.busy)
		if !slices.Equal(got, tt.want) || peer != tt.wantPeer {
			t.Errorf("%d: %s with leader %d, controller %d: %v -> %d, want %v -> %d", i, tt.w, tt.leader, tt.ctrl, got, peer, tt.want, tt.wantPeer)
		}
	}
}

func TestActiveFaultsPairsEachFaultWithItsRepair(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	evs := []FaultEvent{
		{At: 10 * ms, Op: OpKill, Broker: 1},
		{At: 20 * ms, Op: OpCutLink, Broker: 0, Detail: "to 2"},
		{At: 30 * ms, Op: OpLatency, Broker: 2, Detail: "100ms±50ms"},
		{At: 40 * ms, Op: OpRestart, Broker: 1},
		{At: 50 * ms, Op: OpHealLink, Broker: 0, Detail: "to 2"},
		{At: 60 * ms, Op: OpLatency, Broker: 2, Detail: "0s"},
	}
	for _, tt := range []struct {
		at   time.Duration
		want []string
	}{
		{5 * ms, nil},
		{35 * ms, []string{"kill 1", "cut-link 0 to 2", "latency 2 100ms±50ms"}},
		{45 * ms, []string{"cut-link 0 to 2", "latency 2 100ms±50ms"}},
		{70 * ms, nil},
	} {
		if got := ActiveFaults(evs, tt.at); !slices.Equal(got, tt.want) {
			t.Errorf("at %v: %q, want %q", tt.at, got, tt.want)
		}
	}
}
