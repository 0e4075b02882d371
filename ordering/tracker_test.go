package ordering

import (
	"errors"
	"math/rand/v2"
	"testing"
)

// op is one step on a Tracker: add or done an offset.
type op struct {
	add    bool
	offset int64
}

func adds(offs ...int64) []op {
	ops := make([]op, len(offs))
	for i, o := range offs {
		ops[i] = op{add: true, offset: o}
	}
	return ops
}

func dones(offs ...int64) []op {
	ops := make([]op, len(offs))
	for i, o := range offs {
		ops[i] = op{offset: o}
	}
	return ops
}

func apply(t *testing.T, tr *Tracker, ops []op) {
	t.Helper()
	for _, o := range ops {
		var err error
		if o.add {
			err = tr.Add(o.offset)
		} else {
			err = tr.Done(o.offset)
		}
		if err != nil {
			t.Fatalf("add=%v offset %d: %v", o.add, o.offset, err)
		}
	}
}

func TestTrackerCommittable(t *testing.T) {
	t.Parallel()
	cat := func(parts ...[]op) []op {
		var all []op
		for _, p := range parts {
			all = append(all, p...)
		}
		return all
	}
	tests := []struct {
		name    string
		start   int64
		ops     []op
		want    int64
		pending int
	}{
		{"nothing added commits the start", 7, nil, 7, 0},
		{"added but not done commits the first", 0, adds(0, 1, 2), 0, 3},
		{"all done in order commits after the last", 0, cat(adds(0, 1, 2), dones(0, 1, 2)), 3, 0},
		{"out of order completion stops at the lowest not done", 0, cat(adds(0, 1, 2, 3, 4), dones(3, 1, 0)), 2, 2},
		{"all done in reverse order", 10, cat(adds(10, 11, 12), dones(12, 11, 10)), 13, 0},
		{"gaps between offsets are not waited for", 0, cat(adds(0, 1, 5, 9), dones(0, 1)), 5, 2},
		{"gap after the last done record", 0, cat(adds(0, 1, 5, 9), dones(0, 1, 5)), 9, 1},
		{"gaps and all done", 0, cat(adds(0, 1, 5, 9), dones(9, 5, 1, 0)), 10, 0},
		{"gap before the first added record", 0, adds(10), 10, 1},
		{"gap before the first added record, done", 0, cat(adds(10), dones(10)), 11, 0},
		{"unknown start is set by the first add", -1, adds(42), 42, 1},
		{"unknown start with nothing added", -1, nil, -1, 0},
		{"done above a stuck record does not move the offset", 0, cat(adds(0, 1, 2, 3), dones(1, 2, 3)), 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewTracker(tt.start)
			apply(t, tr, tt.ops)
			if got := tr.Committable(); got != tt.want {
				t.Errorf("Committable() = %d, want %d", got, tt.want)
			}
			if got := tr.Checkpoint(DefaultMetadataMaxBytes).Offset; got != tt.want {
				t.Errorf("Checkpoint().Offset = %d, want %d", got, tt.want)
			}
			if got := tr.Pending(); got != tt.pending {
				t.Errorf("Pending() = %d, want %d", got, tt.pending)
			}
		})
	}
}

func TestTrackerRejectsMisuse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		start int64
		setup []op
		bad   op
		want  error
	}{
		{"add the same offset twice", 0, adds(0), op{add: true, offset: 0}, ErrOffsetOrder},
		{"add a lower offset", 0, adds(0, 5), op{add: true, offset: 3}, ErrOffsetOrder},
		{"add below the start", 10, nil, op{add: true, offset: 9}, ErrOffsetOrder},
		{"add a negative offset", -1, nil, op{add: true, offset: -5}, ErrOffsetOrder},
		{"done never added", 0, adds(0, 2), op{offset: 1}, ErrUnknownOffset},
		{"done twice", 0, append(adds(0, 1), dones(1)...), op{offset: 1}, ErrUnknownOffset},
		{"done twice after it was committed", 0, append(adds(0), dones(0)...), op{offset: 0}, ErrUnknownOffset},
		{"done on an empty tracker", 0, nil, op{offset: 0}, ErrUnknownOffset},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewTracker(tt.start)
			apply(t, tr, tt.setup)
			before := tr.Checkpoint(DefaultMetadataMaxBytes)
			var err error
			if tt.bad.add {
				err = tr.Add(tt.bad.offset)
			} else {
				err = tr.Done(tt.bad.offset)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if after := tr.Checkpoint(DefaultMetadataMaxBytes); after != before {
				t.Errorf("rejected call changed the checkpoint from %+v to %+v", before, after)
			}
		})
	}
}

// TestTrackerMatchesModelUnderRandomCompletion checks Committable against
// a direct computation after every step of random adds (with gaps) and
// random completions.
func TestTrackerMatchesModelUnderRandomCompletion(t *testing.T) {
	t.Parallel()
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 1))
		start := int64(rng.IntN(100))
		tr := NewTracker(start)
		var added []int64
		done := map[int64]bool{}
		next := start
		for step := 0; step < 2000; step++ {
			var notDone []int64
			for _, o := range added {
				if !done[o] {
					notDone = append(notDone, o)
				}
			}
			if len(notDone) == 0 || rng.IntN(2) == 0 {
				next += int64(rng.IntN(3)) // gaps of 0, 1 or 2
				if err := tr.Add(next); err != nil {
					t.Fatal(err)
				}
				added = append(added, next)
				next++
			} else {
				o := notDone[rng.IntN(len(notDone))]
				if err := tr.Done(o); err != nil {
					t.Fatal(err)
				}
				done[o] = true
			}
			want := next
			for _, o := range added {
				if !done[o] {
					want = o
					break
				}
			}
			if got := tr.Committable(); got != want {
				t.Fatalf("seed %d step %d: Committable() = %d, want %d", seed, step, got, want)
			}
		}
	}
}

func TestTrackerMemoryStaysBoundedBehindAStuckRecord(t *testing.T) {
	t.Parallel()
	tr := NewTracker(0)
	apply(t, tr, adds(0)) // never done
	rng := rand.New(rand.NewPCG(3, 3))
	var window []int64
	for o := int64(1); o <= 200_000; o++ {
		if err := tr.Add(o); err != nil {
			t.Fatal(err)
		}
		window = append(window, o)
		if len(window) == 100 { // complete a window of 100 in random order
			rng.Shuffle(len(window), func(i, j int) { window[i], window[j] = window[j], window[i] })
			for _, w := range window {
				if err := tr.Done(w); err != nil {
					t.Fatal(err)
				}
			}
			window = window[:0]
		}
		if held := len(tr.entries) - tr.head; held > 2*tr.Pending()+130 {
			t.Fatalf("after offset %d: %d entries held for %d pending", o, held, tr.Pending())
		}
	}
	cp := tr.Checkpoint(DefaultMetadataMaxBytes)
	set, err := DecodeMetadata(cp.Metadata)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Offset != 0 || set.Len() != 200_000 || !set.Skip(1) || !set.Skip(200_000) {
		t.Fatalf("checkpoint %+v names %d records, want offset 0 and 1..200000", cp, set.Len())
	}
}
