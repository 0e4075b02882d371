package verify

import (
	"errors"
	"testing"
)

// copierHistory is a copied history: k0:0..2 acknowledged in input
// partition 0, copied to output partition 0 in one committed transaction
// of producer 7 (offsets 0-2, marker at 3), read by reader 0.
func copierHistory() CopierHistory {
	h := CopierHistory{Seed: 3}
	for i := range 3 {
		v := Value{Key: 0, Seq: i}
		h.Sends = append(h.Sends, Send{Value: v, Acked: true, Partition: 0, Offset: -1})
		h.Log = append(h.Log, LogEntry{Partition: 0, Offset: int64(i), Value: v, ProducerID: 7, Transactional: true})
	}
	h.Log = append(h.Log, LogEntry{Partition: 0, Offset: 3, ProducerID: 7, Marker: MarkerCommit})
	h.Polls = []Poll{{Reader: 0, At: 1, Records: []Record{
		{Partition: 0, Offset: 0, Value: Value{Key: 0, Seq: 0}},
		{Partition: 0, Offset: 1, Value: Value{Key: 0, Seq: 1}},
		{Partition: 0, Offset: 2, Value: Value{Key: 0, Seq: 2}},
	}}}
	return h
}

func TestCheckCopierCleanHistoryHasNoAnomaly(t *testing.T) {
	t.Parallel()
	r := CheckCopier(copierHistory())
	if r.Err() != nil || r.Acked != 3 || r.Copied != 3 || r.Read != 3 {
		t.Fatalf("report %+v, err %v", r, r.Err())
	}
}

// TestCheckCopierNamesAnAbortedRead: a read_committed reader returned a
// record of a transaction its producer aborted (G1a).
func TestCheckCopierNamesAnAbortedRead(t *testing.T) {
	t.Parallel()
	h := copierHistory()
	// An earlier attempt of k0:0 by producer 8, aborted, was read.
	h.Log = append(h.Log, LogEntry{Partition: 0, Offset: 4, Value: Value{Key: 0, Seq: 0}, ProducerID: 8, Transactional: true},
		LogEntry{Partition: 0, Offset: 5, ProducerID: 8, Marker: MarkerAbort})
	h.Polls = append(h.Polls, Poll{Reader: 0, At: 2, Records: []Record{{Partition: 0, Offset: 4, Value: Value{Key: 0, Seq: 0}}}})
	r := CheckCopier(h)
	a, ok := r.Findings.Get(AbortedRead)
	if !ok || a.Count != 1 || r.AbortedReads != 1 || a.Examples[0].Offset != 4 || a.Examples[0].Note != "producer 8 aborted it at offset 5" {
		t.Fatalf("findings %+v", r.Findings)
	}
	if !errors.Is(r.Err(), ErrAnomaly) {
		t.Errorf("Err() = %v, want ErrAnomaly", r.Err())
	}
	// The aborted copy read is also a second copy of k0:0.
	if r.Duplicated != 1 {
		t.Errorf("duplicated %d, want 1", r.Duplicated)
	}
}

// TestCheckCopierNamesAnIntermediateRead: a read_committed reader read past
// a committed transaction having read only part of it, or read a record
// of a transaction that never ended (G1b).
func TestCheckCopierNamesAnIntermediateRead(t *testing.T) {
	t.Parallel()
	t.Run("part of a committed transaction", func(t *testing.T) {
		t.Parallel()
		h := copierHistory()
		h.Sends = append(h.Sends, Send{Value: Value{Key: 1, Seq: 0}, Acked: true, Partition: 0, Offset: -1})
		h.Log = append(h.Log, LogEntry{Partition: 0, Offset: 4, Value: Value{Key: 1, Seq: 0}, ProducerID: -1})
		h.Polls = []Poll{{Reader: 0, At: 1, Records: []Record{
			{Partition: 0, Offset: 0, Value: Value{Key: 0, Seq: 0}},
			{Partition: 0, Offset: 4, Value: Value{Key: 1, Seq: 0}},
		}}}
		r := CheckCopier(h)
		a, ok := r.Findings.Get(IntermediateRead)
		if !ok || a.Count != 1 || a.Examples[0].Offset != 1 || r.IntermediateReads != 1 {
			t.Fatalf("findings %+v", r.Findings)
		}
	})
	t.Run("not read past yet", func(t *testing.T) {
		t.Parallel()
		h := copierHistory()
		h.Polls[0].Records = h.Polls[0].Records[:1]
		if r := CheckCopier(h); r.Findings.Count(IntermediateRead) != 0 {
			t.Fatalf("findings %+v", r.Findings)
		}
	})
	t.Run("a transaction that never ended", func(t *testing.T) {
		t.Parallel()
		h := copierHistory()
		h.Log = h.Log[:3] // no marker
		r := CheckCopier(h)
		if a, ok := r.Findings.Get(IntermediateRead); !ok || a.Count != 3 {
			t.Fatalf("findings %+v", r.Findings)
		}
	})
}

// TestCheckCopierCountsDuplicatesLossAndReorder: what an at-least-once
// copier shows — a copy written twice — and what a broken one would: a
// record never copied, a key copied out of order.
func TestCheckCopierCountsDuplicatesLossAndReorder(t *testing.T) {
	t.Parallel()
	h := copierHistory()
	// k0:1 copied again, outside a transaction, after a crash.
	h.Log = append(h.Log, LogEntry{Partition: 0, Offset: 4, Value: Value{Key: 0, Seq: 1}, ProducerID: 9})
	h.Polls = append(h.Polls, Poll{Reader: 0, At: 2, Records: []Record{{Partition: 0, Offset: 4, Value: Value{Key: 0, Seq: 1}}}})
	if r := CheckCopier(h); r.Duplicated != 1 || r.Findings.Count(Duplicate) != 1 || r.AbortedReads != 0 {
		t.Fatalf("duplicate: report %+v", r)
	}

	h = copierHistory()
	h.Sends = append(h.Sends, Send{Value: Value{Key: 0, Seq: 3}, Acked: true, Partition: 0, Offset: -1})
	if r := CheckCopier(h); r.Lost != 1 {
		t.Fatalf("lost: report %+v", r)
	}

	h = copierHistory()
	h.Polls[0].Records[0].Value, h.Polls[0].Records[2].Value = Value{Key: 0, Seq: 2}, Value{Key: 0, Seq: 0}
	if r := CheckCopier(h); r.Reordered == 0 {
		t.Fatalf("reordered: report %+v", r)
	}
}
