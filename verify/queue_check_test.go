package verify

import (
	"errors"
	"testing"
	"time"

	"github.com/kafkaguard/kafkaguard/consume"
)

// queueHistory is a clean hand-built history: one partition, offsets 0..5 holding k0:0, k1:0,
// k0:1, k1:1, k0:2, k1:2, all acknowledged; consumer a (generation 1) polls 0..4, handles 0..3
// and commits 4 (naming nothing above), crashes while 4 is in flight; b (generation 2) polls 4
// and 5 from the committed offset and handles them; the group commits 6.
func queueHistory() QueueHistory {
	vals := []Value{{0, 0}, {1, 0}, {0, 1}, {1, 1}, {0, 2}, {1, 2}}
	h := QueueHistory{Order: consume.KeyOrder}
	for i, v := range vals {
		h.Acked = append(h.Acked, Ack{Value: v, Partition: 0, Offset: int64(i)})
		h.Log = append(h.Log, Record{Partition: 0, Offset: int64(i), Value: v})
	}
	ms := time.Millisecond
	handle := func(seq int64, who string, off int64, start time.Duration) Handle {
		return Handle{Seq: seq, Consumer: who, Partition: 0, Offset: off, Value: vals[off], Start: start, At: start + ms}
	}
	h.Handles = []Handle{
		handle(1, "a", 0, 10*ms), handle(2, "a", 1, 12*ms), handle(3, "a", 2, 14*ms), handle(4, "a", 3, 16*ms),
		handle(5, "b", 4, 60*ms), handle(6, "b", 5, 62*ms),
	}
	for i := range int64(5) {
		h.Deliveries = append(h.Deliveries, delivery("a", 1, i, time.Duration(9+2*i)*ms))
	}
	h.Deliveries = append(h.Deliveries, delivery("b", 2, 4, 59*ms), delivery("b", 2, 5, 61*ms))
	h.Commits = []QueueCommit{{At: 30 * ms, Partition: 0, Offset: 4}, {At: 80 * ms, Partition: 0, Offset: 6}}
	h.Crashes = []QueueCrash{{At: 40 * ms, Consumer: "a"}}
	return h
}

// delivery is a record of queueHistory's partition polled by consumer who in generation gen.
func delivery(who string, gen int32, off int64, at time.Duration) Delivery {
	vals := []Value{{0, 0}, {1, 0}, {0, 1}, {1, 1}, {0, 2}, {1, 2}}
	return Delivery{Consumer: who, Generation: gen, At: at, Partition: 0, Offset: off, Value: vals[off]}
}

func TestCheckQueueCleanHistory(t *testing.T) {
	t.Parallel()
	h := queueHistory()
	// a crashed with 4 handled but not committed: b runs it again. That is the at-least-once
	// cost, not an anomaly.
	h.Handles = append(h.Handles[:4], Handle{Seq: 5, Consumer: "a", Partition: 0, Offset: 4, Value: Value{0, 2}, Start: 18 * time.Millisecond, At: 19 * time.Millisecond})
	h.Handles = append(h.Handles, queueHistory().Handles[4:]...)
	h.Handles[5].Seq, h.Handles[6].Seq = 6, 7
	rep := CheckQueue(h)
	if err := rep.Err(); err != nil {
		t.Fatal(err)
	}
	if rep.Acked != 6 || rep.Handled != 7 || rep.Distinct != 6 || rep.Rehandled != 1 || rep.Indeterminate != 0 || rep.Crashes != 1 {
		t.Fatalf("report %+v", rep)
	}
}

// TestCheckQueueNamesEachAnomaly builds, for each anomaly, the clean history with one thing
// changed, and checks that exactly that anomaly is reported, with an example.
func TestCheckQueueNamesEachAnomaly(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	tests := []struct {
		name   string
		change func(*QueueHistory)
		want   AnomalyKind
		count  int
		check  func(*testing.T, QueueReport)
	}{
		{"acked record never handled", func(h *QueueHistory) {
			h.Handles = h.Handles[:5] // 5 is never handled; the last commit (6) passes it too
			h.Commits = h.Commits[:1]
		}, Unseen, 1, nil},
		{"commit passes a record never handled", func(h *QueueHistory) {
			h.Handles = append(h.Handles[:2], h.Handles[3:]...) // 2 is never handled, yet commit 4 passes it
			h.Log = append(h.Log, Record{Partition: 0, Offset: 6, Value: Value{2, 0}})
			h.Commits = append(h.Commits, QueueCommit{At: 90 * ms, Partition: 0, Offset: 7}) // 6: not acked, in the log, committed, never handled
		}, AtLeastOnceViolation, 2, func(t *testing.T, rep QueueReport) {
			if rep.Count(Unseen) != 1 {
				t.Errorf("unseen %d, want 1 (offset 2)", rep.Count(Unseen))
			}
		}},
		{"commit metadata names a record not yet handled", func(h *QueueHistory) {
			h.Commits[0].Done = [][2]int64{{5, 5}} // commit 4 at 30 ms says 5 is done; b handles it at 63 ms
		}, AtLeastOnceViolation, 1, nil},
		{"key handled out of order", func(h *QueueHistory) {
			h.Handles[1].Seq, h.Handles[3].Seq = 4, 2 // k1:1 (offset 3) before k1:0 (offset 1)
		}, ReorderedWithinKey, 1, nil},
		{"handled value the log does not hold there", func(h *QueueHistory) {
			h.Handles[5].Value = Value{1, 7}
		}, InconsistentOffsets, 1, func(t *testing.T, rep QueueReport) {
			if rep.Count(Unseen) != 1 || rep.Indeterminate != 1 {
				t.Errorf("unseen %d, indeterminate %d; want k1:2 unseen and k1:7 indeterminate", rep.Count(Unseen), rep.Indeterminate)
			}
		}},
		{"handled a record above what the log kept (truncated)", func(h *QueueHistory) {
			h.Handles = append(h.Handles, Handle{Seq: 7, Consumer: "b", Partition: 0, Offset: 6, Value: Value{2, 0}, Start: 64 * ms, At: 65 * ms})
		}, InconsistentOffsets, 1, nil},
		{"record run again after its commit was observed", func(h *QueueHistory) {
			// c starts over at offset 0 at 100 ms, after commit 6 was observed at 80 ms.
			h.Handles = append(h.Handles, Handle{Seq: 7, Consumer: "c", Partition: 0, Offset: 0, Value: Value{0, 0}, Start: 100 * ms, At: 101 * ms})
		}, UnexplainedRehandle, 1, func(t *testing.T, rep QueueReport) {
			if rep.Rehandled != 1 {
				t.Errorf("rehandled %d, want 1", rep.Rehandled)
			}
		}},
		{"a member's polls of a partition go back within a generation", func(h *QueueHistory) {
			// a polls 0..4, then 2 again, without a rebalance.
			h.Deliveries = append(h.Deliveries[:5:5], append([]Delivery{delivery("a", 1, 2, 18*ms)}, h.Deliveries[5:]...)...)
		}, NonmonotonicPoll, 1, nil},
		{"a member's polls of a partition repeat an offset", func(h *QueueHistory) {
			h.Deliveries = append(h.Deliveries, delivery("b", 2, 5, 63*ms))
		}, NonmonotonicPoll, 1, nil},
		{"a member's polls of a partition jump over a record", func(h *QueueHistory) {
			// a polls 0, 1, 3, 4: offset 2 holds k0:1 and never reached a.
			h.Deliveries = append(h.Deliveries[:2:2], h.Deliveries[3:]...)
		}, PollSkip, 1, func(t *testing.T, rep QueueReport) {
			a, _ := rep.Findings.Get(PollSkip)
			if e := a.Examples[0]; e.Offset != 2 || e.Value != (Value{0, 1}) || e.Consumer != "a" {
				t.Errorf("example %v, want the skipped k0:1 at 0/2, polled by a", e)
			}
		}},
		{"record delivered again after its commit was observed", func(h *QueueHistory) {
			// a, in a new group session at 85 ms (after commit 6 at 80 ms), is handed 4 again.
			d := delivery("a", 1, 4, 85*ms)
			d.Session = 1
			h.Deliveries = append(h.Deliveries, d)
			h.Handles = append(h.Handles, Handle{Seq: 7, Consumer: "a", Partition: 0, Offset: 4, Value: Value{0, 2}, Start: 90 * ms, At: 91 * ms})
		}, UnexplainedRehandle, 1, nil},
		{"record named done by the commit metadata run again", func(h *QueueHistory) {
			h.Commits[0].Done = [][2]int64{{5, 5}}
			h.Handles[5].Start = 20 * ms // a handled 5 first, before the commit that names it
			h.Handles[5].At = 21 * ms
			h.Handles[5].Consumer = "a"
			h.Handles = append(h.Handles, Handle{Seq: 7, Consumer: "b", Partition: 0, Offset: 5, Value: Value{1, 2}, Start: 62 * ms, At: 63 * ms})
		}, UnexplainedRehandle, 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := queueHistory()
			h.Seed = 42
			tt.change(&h)
			rep := CheckQueue(h)
			if got := rep.Count(tt.want); got != tt.count {
				t.Fatalf("%s: %d, want %d; report %+v", tt.want, got, tt.count, rep)
			}
			for _, f := range rep.Findings {
				if len(f.Examples) == 0 || len(f.Examples) > MaxExamples || len(f.Examples) > f.Count {
					t.Errorf("%s: %d examples for %d", f.Kind, len(f.Examples), f.Count)
				}
				if e := f.Examples[0]; e.Seed != 42 {
					t.Errorf("%s: example %v names seed %d, want the history's 42", f.Kind, e, e.Seed)
				}
			}
			if !errors.Is(rep.Err(), ErrQueueAnomaly) {
				t.Errorf("Err() = %v, want ErrQueueAnomaly", rep.Err())
			}
			if tt.check != nil {
				tt.check(t, rep)
			}
			for _, f := range rep.Findings {
				if f.Kind == tt.want || tt.check != nil {
					continue
				}
				t.Errorf("also reported %s: %+v", f.Kind, f)
			}
		})
	}
}

// TestCheckQueueUnorderedPromisesNoKeyOrder: Unordered consumers may handle a key's records in
// any order; the same history under KeyOrder is an anomaly.
func TestCheckQueueUnorderedPromisesNoKeyOrder(t *testing.T) {
	t.Parallel()
	h := queueHistory()
	h.Handles[1].Seq, h.Handles[3].Seq = 4, 2
	h.Order = consume.Unordered
	if err := CheckQueue(h).Err(); err != nil {
		t.Fatalf("Unordered: %v", err)
	}
	h.Order = consume.PartitionOrder
	if n := CheckQueue(h).Count(ReorderedWithinKey); n != 1 {
		t.Fatalf("PartitionOrder: %d reordered, want 1", n)
	}
}

func TestCheckQueueKeepsFiveExamples(t *testing.T) {
	t.Parallel()
	h := queueHistory()
	h.Handles = nil
	for i := range 4 {
		v := Value{9, i}
		h.Acked = append(h.Acked, Ack{Value: v, Partition: 1, Offset: int64(i)})
	}
	f := CheckQueue(h).Findings
	if len(f) != 2 || f[0].Kind != Unseen || f[0].Count != 10 || len(f[0].Examples) != MaxExamples {
		t.Fatalf("findings %+v, want 10 unseen with %d examples, then the at-least-once violations", f, MaxExamples)
	}
	if f[0].Examples[0].Value != (Value{0, 0}) {
		t.Errorf("first example %v, want k0:0 (ordered by key and sequence)", f[0].Examples[0])
	}
}

// TestCheckQueueRebalancesRestartPollPositions: a rebalance, or a group session that ended in
// an error, starts a member's positions afresh. A member that loses a partition and gets it back
// restarts from the committed offset (back below what it had polled), one that keeps a partition
// goes on, and a new owner starts where the commit says, above what another member had polled:
// none of it is an anomaly. The same polls within one generation and session are.
func TestCheckQueueRebalancesRestartPollPositions(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	h := queueHistory()
	// a polls 0..4 in generation 1; the commit says 2; a rebalance (generation 3) hands the
	// partition back to a, which polls 2..5 again; then b (generation 4) takes it over.
	h.Deliveries = h.Deliveries[:5]
	for i := range int64(4) {
		h.Deliveries = append(h.Deliveries, delivery("a", 3, 2+i, time.Duration(40+i)*ms))
	}
	h.Deliveries = append(h.Deliveries, delivery("b", 4, 4, 59*ms), delivery("b", 4, 5, 61*ms))
	// c polls 0, 1 in generation 2, then 4, 5 in generation 5 after another member committed 4.
	h.Deliveries = append(h.Deliveries, delivery("c", 2, 0, 20*ms), delivery("c", 2, 1, 21*ms),
		delivery("c", 5, 4, 70*ms), delivery("c", 5, 5, 71*ms))
	// d keeps its partition across generations 1 and 2 and goes on.
	h.Deliveries = append(h.Deliveries, delivery("d", 1, 0, 10*ms), delivery("d", 2, 1, 30*ms))
	// e polls 0..3 in generation 3; its group session ends in an error (the coordinator moved)
	// and it joins again, at generation 3 again, getting the partition back from offset 1.
	for i := range int64(4) {
		h.Deliveries = append(h.Deliveries, delivery("e", 3, i, time.Duration(20+i)*ms))
	}
	for i := range int64(2) {
		d := delivery("e", 3, 1+i, time.Duration(50+i)*ms)
		d.Session = 1
		h.Deliveries = append(h.Deliveries, d)
	}
	if rep := CheckQueue(h); rep.Err() != nil {
		t.Fatalf("rebalanced history: %v", rep.Err())
	}
	// The same polls without the rebalances: a goes back from 4 to 2, c jumps from 1 to 4, e goes
	// back from 3 to 1.
	for i := range h.Deliveries {
		h.Deliveries[i].Generation, h.Deliveries[i].Session = 1, 0
	}
	rep := CheckQueue(h)
	if rep.Count(NonmonotonicPoll) != 2 || rep.Count(PollSkip) != 1 || len(rep.Findings) != 2 {
		t.Fatalf("one generation: %+v, want nonmonotonic-poll 2 (a: 4 then 2, e: 3 then 1) and poll-skip 1 (c: 1 then 4)", rep.Findings)
	}
	a, _ := rep.Findings.Get(NonmonotonicPoll)
	if e := a.Examples[0]; e.Consumer != "a" || e.Offset != 2 {
		t.Errorf("nonmonotonic-poll example %v, want a's poll of 0/2", e)
	}
	s, _ := rep.Findings.Get(PollSkip)
	if e := s.Examples[0]; e.Consumer != "c" || e.Offset != 2 {
		t.Errorf("poll-skip example %v, want 0/2, skipped by c", e)
	}
}

// TestCheckQueueZombieRerunIsTheAtLeastOnceCost: a member whose session expired without its
// knowing runs a record it got before the next owner handled and committed it. That is a re-run,
// the at-least-once cost, not an unexplained one; the same handle by a member handed the record
// only after the commit is (TestCheckQueueNamesEachAnomaly).
func TestCheckQueueZombieRerunIsTheAtLeastOnceCost(t *testing.T) {
	t.Parallel()
	h := queueHistory()
	// a got 4 at 17 ms; b handled 4 and 5 and the group committed 6 (observed at 80 ms); a, a
	// zombie, runs 4 at 90 ms.
	h.Handles = append(h.Handles, Handle{Seq: 7, Consumer: "a", Partition: 0, Offset: 4, Value: Value{0, 2},
		Start: 90 * time.Millisecond, At: 91 * time.Millisecond})
	rep := CheckQueue(h)
	if err := rep.Err(); err != nil || rep.Rehandled != 1 {
		t.Fatalf("rehandled %d, %v; want 1 re-run and no anomaly", rep.Rehandled, err)
	}
}
