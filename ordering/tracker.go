package ordering

import (
	"fmt"
	"sort"
	"sync"
)

// Checkpoint is what to commit for a partition: Offset is the next offset to
// consume (every record below it is done), Metadata names the records done
// above it (see DecodeMetadata).
type Checkpoint struct {
	// Offset is the offset to commit. It is negative only for a Tracker
	// started at an unknown offset that has had nothing added yet; there is
	// nothing to commit then.
	Offset int64
	// Metadata is the string to commit with Offset.
	Metadata string
}

// entry is one pending offset (lo == hi), or a run of added offsets that
// are all done, from lo to hi; never-added offsets inside a run were not
// delivered.
type entry struct {
	lo, hi int64
	done   bool
}

// Tracker answers what is committable for one partition. Offsets are added in
// increasing order as records are dispatched, and marked done in any order as
// their processing completes. Offsets that are never added are not waited for.
//
// A Tracker is safe for concurrent use.
type Tracker struct {
	mu        sync.Mutex
	next      int64   // lowest offset Add accepts: last added + 1, or the start
	entries   []entry // entries[head:]: added offsets from the committable one on, ascending
	head      int     // entries[head], if any, is not done
	pending   int     // added and not done
	runs      int     // done entries in entries[head:]
	inherited SkipSet // done before a restart, from the commit metadata
}

// NewTracker returns a Tracker for a partition whose first record to process
// is at offset, normally the committed offset. A negative offset means the
// start is not known yet; the first Add sets it.
func NewTracker(offset int64) *Tracker {
	return &Tracker{next: offset}
}

// ResumeTracker returns a Tracker that continues from a committed
// Checkpoint: it starts at cp.Offset and reports through Skip the records
// that cp.Metadata names as done. Records a caller skips this way must still
// be added and marked done, as if they had run.
//
// If the metadata cannot be used, ResumeTracker returns the Tracker without
// skips together with an error wrapping ErrInvalidMetadata or
// ErrMetadataMismatch: the only consequence is that those records run again.
func ResumeTracker(cp Checkpoint) (*Tracker, error) {
	t := NewTracker(cp.Offset)
	s, err := DecodeMetadata(cp.Metadata)
	if err != nil {
		return t, fmt.Errorf("ordering: resume at offset %d: %w", cp.Offset, err)
	}
	if cp.Metadata != "" && s.Offset() != cp.Offset {
		return t, fmt.Errorf("ordering: resume at offset %d: %w (metadata is for offset %d)",
			cp.Offset, ErrMetadataMismatch, s.Offset())
	}
	t.inherited = s
	return t, nil
}

// Skip reports whether the record at offset was already processed before the
// restart this Tracker was resumed from.
func (t *Tracker) Skip(offset int64) bool {
	return t.inherited.Skip(offset)
}

// Add records that the record at offset was dispatched. Offsets must be
// added in increasing order; gaps are allowed. An offset at or below one
// already added, below the start, or negative returns an error wrapping
// ErrOffsetOrder.
func (t *Tracker) Add(offset int64) error { return t.addRange(offset, offset) }

// addRange adds the records lo to hi as one entry (a batch), done as a
// whole by Done(lo).
func (t *Tracker) addRange(lo, hi int64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.canAddLocked(lo); err != nil {
		return err
	}
	t.entries = append(t.entries, entry{lo: lo, hi: max(lo, hi)})
	t.pending++
	t.next = max(lo, hi) + 1
	return nil
}

// skipRange reports whether every record from lo to hi was processed
// before the restart (one inherited run covers them all).
func (t *Tracker) skipRange(lo, hi int64) bool {
	if lo == hi {
		return t.inherited.Skip(lo)
	}
	return t.inherited.covers(lo, hi)
}

// Done records that the record at offset was processed. Offsets may be
// marked done in any order. An offset that is not pending (never added, or
// already done) returns an error wrapping ErrUnknownOffset.
//
// Memory stays proportional to the pending offsets, not to the records done
// behind a stuck one: runs of done offsets are merged.
func (t *Tracker) Done(offset int64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	win := t.entries[t.head:]
	i := sort.Search(len(win), func(i int) bool { return win[i].lo >= offset })
	if i == len(win) || win[i].lo != offset || win[i].done {
		return fmt.Errorf("%w: offset %d", ErrUnknownOffset, offset)
	}
	win[i].done = true
	t.pending--
	t.runs++
	for t.head < len(t.entries) && t.entries[t.head].done {
		t.head++
		t.runs--
	}
	switch {
	case t.head == len(t.entries):
		t.entries, t.head = t.entries[:0], 0
	case t.runs > t.pending+64:
		t.compact()
	case t.head >= 64 && t.head >= len(t.entries)/2:
		n := copy(t.entries, t.entries[t.head:])
		t.entries, t.head = t.entries[:n], 0
	}
	return nil
}

// compact merges neighbouring done entries and drops the popped ones.
// Afterwards at most pending+1 done entries remain, so the cost is
// amortised over the Done calls that made them.
func (t *Tracker) compact() {
	out := t.entries[:0]
	for _, e := range t.entries[t.head:] {
		if n := len(out); e.done && n > 0 && out[n-1].done {
			out[n-1].hi = e.hi
			continue
		}
		out = append(out, e)
	}
	clear(t.entries[len(out):])
	t.entries, t.head = out, 0
	t.runs = 0
	for _, e := range out {
		if e.done {
			t.runs++
		}
	}
}

// Pending returns the number of offsets added and not yet done.
func (t *Tracker) Pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pending
}

// Committable returns the offset to commit: the lowest added offset not yet
// done or, when every added offset is done, the one after the last added.
func (t *Tracker) Committable() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.committable()
}

func (t *Tracker) committable() int64 {
	if t.head < len(t.entries) {
		return t.entries[t.head].lo
	}
	return t.next
}

// Checkpoint returns the committable offset together with metadata naming
// the records done above it, encoded in at most maxBytes bytes (pass
// DefaultMetadataMaxBytes, or the broker's offset.metadata.max.bytes). When
// the full set does not fit, its highest runs are left out: those records
// would run again after a restart, but no record is ever claimed done that
// was not. A maxBytes too small for any run gives empty metadata.
//
// Records done before the restart a Tracker was resumed from and not added
// since are still named, so a second crash does not run them again either.
func (t *Tracker) Checkpoint(maxBytes int) Checkpoint {
	t.mu.Lock()
	defer t.mu.Unlock()
	off := t.committable()
	if off < 0 || maxBytes <= 0 {
		return Checkpoint{Offset: off}
	}
	var spans []span
	for i := t.head; i < len(t.entries); i++ {
		e := t.entries[i]
		if !e.done {
			continue
		}
		if i > t.head && t.entries[i-1].done {
			// Offsets between two done records were never delivered.
			spans[len(spans)-1].hi = e.hi
			continue
		}
		spans = append(spans, span{lo: e.lo, hi: e.hi})
	}
	for lo, hi := range t.inherited.Ranges() {
		if hi < t.next {
			continue
		}
		lo = max(lo, t.next)
		if n := len(spans); n > 0 && spans[n-1].hi+1 == lo {
			spans[n-1].hi = hi
			continue
		}
		spans = append(spans, span{lo: lo, hi: hi})
	}
	return Checkpoint{Offset: off, Metadata: encodeMetadata(off, spans, maxBytes)}
}

// canAdd reports the error Add would return for offset.
func (t *Tracker) canAdd(offset int64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.canAddLocked(offset)
}

func (t *Tracker) canAddLocked(offset int64) error {
	if offset < 0 {
		return fmt.Errorf("%w: negative offset %d", ErrOffsetOrder, offset)
	}
	if offset < t.next {
		return fmt.Errorf("%w: offset %d added, expected %d or above", ErrOffsetOrder, offset, t.next)
	}
	return nil
}
