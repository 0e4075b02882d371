package verify

import (
	"errors"
	"slices"
	"testing"
)

// recs builds records of one partition from values, at consecutive offsets.
func recs(partition int32, vs ...Value) []Record {
	out := make([]Record, len(vs))
	for i, v := range vs {
		out[i] = Record{Partition: partition, Offset: int64(i), Value: v}
	}
	return out
}

func v(key, seq int) Value { return Value{Key: key, Seq: seq} }

func TestCheckCatchesEachViolation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		acked []Value
		read  []Record
		want  Report
		errs  []error
	}{
		{
			name:  "everything acked is read once in order",
			acked: []Value{v(0, 0), v(1, 0), v(0, 1), v(1, 1)},
			read:  recs(0, v(0, 0), v(1, 0), v(0, 1), v(1, 1)),
			want:  Report{Acked: 4, Read: 4},
		},
		{
			name:  "acked record missing is lost",
			acked: []Value{v(0, 0), v(0, 1), v(0, 2)},
			read:  recs(0, v(0, 0), v(0, 2)),
			want:  Report{Acked: 3, Read: 2, Lost: 1, LostSample: []Value{v(0, 1)}},
			errs:  []error{ErrLost},
		},
		{
			name:  "the tail lost when a leader dies",
			acked: []Value{v(0, 0), v(0, 1), v(0, 2), v(0, 3)},
			read:  recs(0, v(0, 0), v(0, 1)),
			want:  Report{Acked: 4, Read: 2, Lost: 2, LostSample: []Value{v(0, 2), v(0, 3)}},
			errs:  []error{ErrLost},
		},
		{
			name:  "record read twice is duplicated",
			acked: []Value{v(0, 0), v(0, 1)},
			read:  recs(0, v(0, 0), v(0, 1), v(0, 1)),
			want:  Report{Acked: 2, Read: 3, Duplicated: 1, DuplicatedSample: []Value{v(0, 1)}},
			errs:  []error{ErrDuplicated},
		},
		{
			name:  "three copies are two duplicates",
			acked: []Value{v(0, 0)},
			read:  recs(0, v(0, 0), v(0, 0), v(0, 0)),
			want:  Report{Acked: 1, Read: 3, Duplicated: 2, DuplicatedSample: []Value{v(0, 0)}},
			errs:  []error{ErrDuplicated},
		},
		{
			name:  "retried batch landing after a later one is reordered",
			acked: []Value{v(0, 0), v(0, 1), v(0, 2)},
			read:  recs(0, v(0, 0), v(0, 2), v(0, 1)),
			want:  Report{Acked: 3, Read: 3, Reordered: 1, ReorderedSample: []Value{v(0, 1)}},
			errs:  []error{ErrReordered},
		},
		{
			name:  "other keys interleaving is not a reorder",
			acked: []Value{v(0, 0), v(1, 0), v(0, 1), v(1, 1)},
			read:  recs(0, v(1, 0), v(1, 1), v(0, 0), v(0, 1)),
			want:  Report{Acked: 4, Read: 4},
		},
		{
			name:  "a duplicate far behind is counted as a duplicate, not a reorder",
			acked: []Value{v(0, 0), v(0, 1), v(0, 2)},
			read:  recs(0, v(0, 0), v(0, 1), v(0, 2), v(0, 0)),
			want:  Report{Acked: 3, Read: 4, Duplicated: 1, DuplicatedSample: []Value{v(0, 0)}},
			errs:  []error{ErrDuplicated},
		},
		{
			name:  "present but never acked is reported, not a violation",
			acked: []Value{v(0, 0)},
			read:  recs(0, v(0, 0), v(0, 1)),
			want:  Report{Acked: 1, Read: 2, UnackedPresent: 1},
		},
		{
			name:  "unacked records that never arrived are not lost",
			acked: []Value{v(0, 0), v(0, 2)},
			read:  recs(0, v(0, 0), v(0, 2)),
			want:  Report{Acked: 2, Read: 2},
		},
		{
			name:  "a key in two partitions is split",
			acked: []Value{v(0, 0), v(0, 1)},
			read:  append(recs(0, v(0, 0)), recs(1, v(0, 1))...),
			want:  Report{Acked: 2, Read: 2, SplitKeys: 1},
			errs:  []error{ErrReordered},
		},
		{
			name:  "acks repeated count once",
			acked: []Value{v(0, 0), v(0, 0)},
			read:  recs(0, v(0, 0)),
			want:  Report{Acked: 1, Read: 1},
		},
		{
			name:  "loss, duplicate and reorder together",
			acked: []Value{v(0, 0), v(0, 1), v(0, 2), v(0, 3), v(1, 0)},
			read:  recs(0, v(0, 0), v(0, 2), v(0, 1), v(0, 2), v(1, 0)),
			want: Report{Acked: 5, Read: 5, Lost: 1, Duplicated: 1, Reordered: 1,
				LostSample: []Value{v(0, 3)}, DuplicatedSample: []Value{v(0, 2)}, ReorderedSample: []Value{v(0, 1)}},
			errs: []error{ErrLost, ErrDuplicated, ErrReordered},
		},
		{
			name: "nothing acked, nothing read",
			want: Report{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Check(tt.acked, tt.read)
			if !equalReports(got, tt.want) {
				t.Fatalf("Check =\n%+v\nwant\n%+v", got, tt.want)
			}
			err := got.Err()
			if (err == nil) != (len(tt.errs) == 0) || got.Clean() != (len(tt.errs) == 0) {
				t.Fatalf("Err() = %v, want errors %v", err, tt.errs)
			}
			for _, want := range tt.errs {
				if !errors.Is(err, want) {
					t.Errorf("Err() = %v, does not match %v", err, want)
				}
			}
			for _, other := range []error{ErrLost, ErrDuplicated, ErrReordered} {
				if !slices.Contains(tt.errs, other) && errors.Is(err, other) {
					t.Errorf("Err() = %v matches %v too", err, other)
				}
			}
		})
	}
}

func equalReports(a, b Report) bool {
	return a.Acked == b.Acked && a.Read == b.Read && a.Lost == b.Lost && a.Duplicated == b.Duplicated &&
		a.Reordered == b.Reordered && a.UnackedPresent == b.UnackedPresent && a.SplitKeys == b.SplitKeys &&
		slices.Equal(a.LostSample, b.LostSample) && slices.Equal(a.DuplicatedSample, b.DuplicatedSample) &&
		slices.Equal(a.ReorderedSample, b.ReorderedSample)
}

func TestCheckOrdersReadRecordsByPartitionAndOffset(t *testing.T) {
	t.Parallel()
	// The same records as an in-order partition, handed over shuffled.
	read := []Record{
		{Partition: 1, Offset: 1, Value: v(1, 1)},
		{Partition: 0, Offset: 2, Value: v(0, 2)},
		{Partition: 0, Offset: 0, Value: v(0, 0)},
		{Partition: 1, Offset: 0, Value: v(1, 0)},
		{Partition: 0, Offset: 1, Value: v(0, 1)},
	}
	acked := []Value{v(0, 0), v(0, 1), v(0, 2), v(1, 0), v(1, 1)}
	if got := Check(acked, read); !got.Clean() || got.Read != 5 {
		t.Fatalf("Check = %+v, want clean with 5 read", got)
	}
	// Offsets say v(0,1) was written after v(0,2): a reorder, whatever the slice order.
	read[4].Offset = 3
	if got := Check(acked, read); got.Reordered != 1 || !slices.Equal(got.ReorderedSample, []Value{v(0, 1)}) {
		t.Fatalf("Check = %+v, want v(0,1) reordered", got)
	}
}

func TestCheckSamplesAtMostSampleSize(t *testing.T) {
	t.Parallel()
	acked := Workload(100, 1)
	got := Check(acked, nil)
	if got.Lost != 100 || len(got.LostSample) != SampleSize {
		t.Fatalf("lost %d with %d samples, want 100 and %d", got.Lost, len(got.LostSample), SampleSize)
	}
	if !slices.Equal(got.LostSample, acked[:SampleSize]) {
		t.Errorf("sample %v, want the first %d by sequence", got.LostSample, SampleSize)
	}
}

func TestCheckDoesNotModifyItsInput(t *testing.T) {
	t.Parallel()
	read := []Record{{Partition: 0, Offset: 1, Value: v(0, 1)}, {Partition: 0, Offset: 0, Value: v(0, 0)}}
	before := slices.Clone(read)
	Check([]Value{v(0, 0)}, read)
	if !slices.Equal(read, before) {
		t.Fatalf("read changed to %v", read)
	}
}

func FuzzCheck(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3}, []byte{0, 2, 1, 1})
	f.Fuzz(func(t *testing.T, ackedB, readB []byte) {
		var acked []Value
		for _, b := range ackedB {
			acked = append(acked, v(int(b%3), int(b/3)))
		}
		var read []Record
		for i, b := range readB {
			read = append(read, Record{Partition: int32(b % 2), Offset: int64(i), Value: v(int(b%3), int(b/3))})
		}
		r := Check(acked, read)
		distinctRead := map[Value]bool{}
		for _, rec := range read {
			distinctRead[rec.Value] = true
		}
		// Every read record is either a first copy or a duplicate; every
		// distinct acked value is either read or lost.
		if r.Read != len(distinctRead)+r.Duplicated {
			t.Fatalf("read %d != distinct %d + duplicated %d", r.Read, len(distinctRead), r.Duplicated)
		}
		if r.Acked != r.Lost+(len(distinctRead)-r.UnackedPresent) {
			t.Fatalf("acked %d != lost %d + acked-and-read %d", r.Acked, r.Lost, len(distinctRead)-r.UnackedPresent)
		}
		if r.Reordered > len(distinctRead) {
			t.Fatalf("reordered %d of %d distinct", r.Reordered, len(distinctRead))
		}
	})
}
