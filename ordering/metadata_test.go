package ordering

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// randomTracker adds n offsets from start with random gaps and marks a
// random share of them done. It returns the tracker, the added offsets and
// which are done.
func randomTracker(rng *rand.Rand, start int64, n int, doneShare float64) (*Tracker, []int64, map[int64]bool) {
	tr := NewTracker(start)
	added := make([]int64, 0, n)
	done := map[int64]bool{}
	next := start
	for range n {
		if rng.IntN(4) == 0 {
			next += int64(rng.IntN(5))
		}
		_ = tr.Add(next)
		added = append(added, next)
		next++
	}
	for _, o := range added {
		if rng.Float64() < doneShare {
			_ = tr.Done(o)
			done[o] = true
		}
	}
	return tr, added, done
}

// checkClaims fails if set claims an offset that was not done: an added
// offset not done, or a never-added offset that is not between two done
// neighbours.
func checkClaims(t *testing.T, set SkipSet, committed int64, added []int64, done map[int64]bool) {
	t.Helper()
	isAdded := map[int64]bool{}
	for _, o := range added {
		isAdded[o] = true
	}
	for lo, hi := range set.Ranges() {
		if lo < committed {
			t.Fatalf("claim [%d,%d] below the committed offset %d", lo, hi, committed)
		}
		for o := lo; o <= hi; o++ {
			if isAdded[o] && !done[o] {
				t.Fatalf("offset %d claimed done but was not", o)
			}
		}
	}
	for i := 1; i < len(added); i++ {
		for o := added[i-1] + 1; o < added[i]; o++ {
			if set.Skip(o) && !(done[added[i-1]] && done[added[i]]) {
				t.Fatalf("gap offset %d claimed without two done neighbours", o)
			}
		}
	}
	if last := added[len(added)-1]; set.Len() > 0 {
		var top int64
		for _, hi := range set.Ranges() {
			top = hi
		}
		if top > last {
			t.Fatalf("claim up to %d beyond the last added offset %d", top, last)
		}
	}
}

func TestMetadataRoundTripNamesEveryDoneRecordAboveTheCommit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		start     int64
		n         int
		doneShare float64
	}{
		{"mostly done", 0, 500, 0.9},
		{"half done", 1 << 40, 500, 0.5},
		{"rarely done", 17, 500, 0.1},
		{"none done", 3, 50, 0},
		{"all done", 3, 50, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(tt.n), uint64(tt.start)))
			tr, added, done := randomTracker(rng, tt.start, tt.n, tt.doneShare)
			cp := tr.Checkpoint(math.MaxInt32)
			set, err := DecodeMetadata(cp.Metadata)
			if err != nil {
				t.Fatalf("DecodeMetadata(%q): %v", cp.Metadata, err)
			}
			if cp.Metadata != "" && set.Offset() != cp.Offset {
				t.Fatalf("metadata offset %d, checkpoint offset %d", set.Offset(), cp.Offset)
			}
			checkClaims(t, set, cp.Offset, added, done)
			for _, o := range added {
				if o >= cp.Offset && set.Skip(o) != done[o] {
					t.Errorf("offset %d: Skip = %v, done = %v", o, set.Skip(o), done[o])
				}
			}
		})
	}
}

func TestMetadataTruncationNeverClaimsUndoneRecords(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 7))
	tr, added, done := randomTracker(rng, 1000, 10000, 0.5)
	full := tr.Checkpoint(math.MaxInt32)
	fullSet, err := DecodeMetadata(full.Metadata)
	if err != nil {
		t.Fatal(err)
	}
	if len(full.Metadata) <= DefaultMetadataMaxBytes {
		t.Fatalf("test needs metadata above the default limit, got %d bytes", len(full.Metadata))
	}
	prev := int64(-1)
	for _, limit := range []int{0, 1, 4, 5, 8, 9, 10, 11, 12, 13, 50, 100, 1000, DefaultMetadataMaxBytes, len(full.Metadata) - 1, len(full.Metadata)} {
		cp := tr.Checkpoint(limit)
		if cp.Offset != full.Offset {
			t.Fatalf("limit %d: offset %d, want %d", limit, cp.Offset, full.Offset)
		}
		if len(cp.Metadata) > limit {
			t.Fatalf("limit %d: metadata is %d bytes", limit, len(cp.Metadata))
		}
		set, err := DecodeMetadata(cp.Metadata)
		if err != nil {
			t.Fatalf("limit %d: %v", limit, err)
		}
		checkClaims(t, set, cp.Offset, added, done)
		for lo, hi := range set.Ranges() {
			for o := lo; o <= hi; o++ {
				if !fullSet.Skip(o) {
					t.Fatalf("limit %d: claims %d, which the full set does not", limit, o)
				}
			}
		}
		if set.Len() < prev {
			t.Fatalf("limit %d: a larger limit named fewer records (%d < %d)", limit, set.Len(), prev)
		}
		prev = set.Len()
	}
	if got := tr.Checkpoint(len(full.Metadata)).Metadata; got != full.Metadata {
		t.Errorf("metadata at exactly its own length was truncated")
	}
	if set, _ := DecodeMetadata(tr.Checkpoint(DefaultMetadataMaxBytes).Metadata); set.Len() == 0 {
		t.Errorf("the default limit named no record")
	}
}

func TestMetadataWorstCaseFitsDefaultLimit(t *testing.T) {
	t.Parallel()
	// Every other record done: the longest encoding per record.
	tr := NewTracker(0)
	for o := range int64(200_000) {
		_ = tr.Add(o)
		if o%2 == 1 {
			_ = tr.Done(o)
		}
	}
	cp := tr.Checkpoint(DefaultMetadataMaxBytes)
	if len(cp.Metadata) > DefaultMetadataMaxBytes {
		t.Fatalf("metadata is %d bytes, limit %d", len(cp.Metadata), DefaultMetadataMaxBytes)
	}
	set, err := DecodeMetadata(cp.Metadata)
	if err != nil {
		t.Fatal(err)
	}
	// 2 bytes per done record, so about 3/4 of 4092 / 2 records fit.
	if set.Len() < 1500 {
		t.Errorf("only %d records named within %d bytes", set.Len(), DefaultMetadataMaxBytes)
	}
}

func TestResumedTrackerSkipsAndCarriesClaimsForward(t *testing.T) {
	t.Parallel()
	// Session 1: 0..9 added; 0 and 5 stay undone, the rest are done.
	tr := NewTracker(0)
	apply(t, tr, adds(0, 1, 2, 3, 4, 5, 6, 7, 8, 9))
	apply(t, tr, dones(1, 2, 3, 4, 6, 7, 8, 9))
	cp := tr.Checkpoint(DefaultMetadataMaxBytes)
	if cp.Offset != 0 {
		t.Fatalf("offset %d, want 0", cp.Offset)
	}

	// Session 2 resumes, processes 0..4 (1..4 skipped), then crashes.
	tr2, err := ResumeTracker(cp)
	if err != nil {
		t.Fatal(err)
	}
	var ran []int64
	for o := int64(0); o <= 4; o++ {
		if err := tr2.Add(o); err != nil {
			t.Fatal(err)
		}
		if !tr2.Skip(o) {
			ran = append(ran, o)
		}
		if err := tr2.Done(o); err != nil {
			t.Fatal(err)
		}
	}
	if len(ran) != 1 || ran[0] != 0 {
		t.Fatalf("session 2 ran %v, want [0]", ran)
	}
	cp2 := tr2.Checkpoint(DefaultMetadataMaxBytes)
	if cp2.Offset != 5 {
		t.Fatalf("session 2 offset %d, want 5", cp2.Offset)
	}

	// Session 3 must still skip 6..9, which session 2 never saw again.
	tr3, err := ResumeTracker(cp2)
	if err != nil {
		t.Fatal(err)
	}
	for o := int64(5); o <= 9; o++ {
		if got, want := tr3.Skip(o), o != 5; got != want {
			t.Errorf("session 3 Skip(%d) = %v, want %v", o, got, want)
		}
	}
}

func TestResumedTrackerClaimsStartingAtTheCommittedOffset(t *testing.T) {
	t.Parallel()
	// Committed 0 with 1..3 done; after 0 is done the commit moves to 1, which
	// is itself claimed: the metadata must say so with a zero first gap.
	tr, err := ResumeTracker(checkpointOf(t, 0, adds(0, 1, 2, 3), dones(1, 2, 3)))
	if err != nil {
		t.Fatal(err)
	}
	apply(t, tr, append(adds(0), dones(0)...))
	cp := tr.Checkpoint(DefaultMetadataMaxBytes)
	set, err := DecodeMetadata(cp.Metadata)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Offset != 1 || set.Offset() != 1 || set.Len() != 3 || !set.Skip(1) || !set.Skip(3) || set.Skip(4) {
		t.Errorf("checkpoint %+v decodes to offset %d with %d records", cp, set.Offset(), set.Len())
	}
}

func checkpointOf(t *testing.T, start int64, opss ...[]op) Checkpoint {
	t.Helper()
	tr := NewTracker(start)
	for _, ops := range opss {
		apply(t, tr, ops)
	}
	return tr.Checkpoint(DefaultMetadataMaxBytes)
}

func TestResumeTrackerIgnoresUnusableMetadata(t *testing.T) {
	t.Parallel()
	good := checkpointOf(t, 5, adds(5, 6, 7), dones(7))
	tests := []struct {
		name string
		cp   Checkpoint
		want error
	}{
		{"foreign metadata", Checkpoint{Offset: 5, Metadata: "written by another tool"}, ErrInvalidMetadata},
		{"metadata for another offset", Checkpoint{Offset: 6, Metadata: good.Metadata}, ErrMetadataMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := ResumeTracker(tt.cp)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if tr == nil {
				t.Fatal("no tracker returned")
			}
			for o := tt.cp.Offset; o < tt.cp.Offset+5; o++ {
				if tr.Skip(o) {
					t.Errorf("Skip(%d) = true from unusable metadata", o)
				}
			}
			if got := tr.Committable(); got != tt.cp.Offset {
				t.Errorf("Committable() = %d, want %d", got, tt.cp.Offset)
			}
		})
	}
	if _, err := ResumeTracker(good); err != nil {
		t.Errorf("good metadata: %v", err)
	}
}

func rawMetadata(vs ...uint64) string {
	var b []byte
	for _, v := range vs {
		b = binary.AppendUvarint(b, v)
	}
	return metadataPrefix + base64.RawURLEncoding.EncodeToString(b)
}

func TestDecodeMetadata(t *testing.T) {
	t.Parallel()
	const maxOff = uint64(math.MaxInt64)
	tests := []struct {
		name     string
		in       string
		wantErr  bool
		offset   int64
		wantSpan [][2]int64
	}{
		{name: "empty is the empty set", in: ""},
		{name: "offset only", in: rawMetadata(9), offset: 9},
		{name: "one run", in: rawMetadata(10, 2, 3), offset: 10, wantSpan: [][2]int64{{12, 14}}},
		{name: "zero first gap", in: rawMetadata(10, 0, 1, 1, 2), offset: 10, wantSpan: [][2]int64{{10, 10}, {12, 13}}},
		{name: "run ending at the largest offset", in: rawMetadata(maxOff-1, 0, 2), offset: math.MaxInt64 - 1, wantSpan: [][2]int64{{math.MaxInt64 - 1, math.MaxInt64}}},
		{name: "no prefix", in: "AAA", wantErr: true},
		{name: "other version", in: strings.Replace(rawMetadata(1, 1, 1), "kg1:", "kg2:", 1), wantErr: true},
		{name: "prefix only", in: metadataPrefix, wantErr: true},
		{name: "not base64", in: metadataPrefix + "***", wantErr: true},
		{name: "padded base64", in: metadataPrefix + base64.URLEncoding.EncodeToString([]byte{1, 1, 1, 0}), wantErr: true},
		{name: "offset above int64", in: rawMetadata(maxOff + 1), wantErr: true},
		{name: "truncated varint", in: metadataPrefix + base64.RawURLEncoding.EncodeToString([]byte{0x80}), wantErr: true},
		{name: "overflowing varint", in: metadataPrefix + base64.RawURLEncoding.EncodeToString([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}), wantErr: true},
		{name: "gap without done run", in: rawMetadata(1, 1), wantErr: true},
		{name: "empty done run", in: rawMetadata(1, 1, 0), wantErr: true},
		{name: "empty gap between runs", in: rawMetadata(1, 1, 1, 0, 1), wantErr: true},
		{name: "gap beyond the largest offset", in: rawMetadata(maxOff, 1, 1), wantErr: true},
		{name: "run beyond the largest offset", in: rawMetadata(maxOff-1, 0, 3), wantErr: true},
		{name: "run after the largest offset", in: rawMetadata(maxOff, 0, 1, 1, 1), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := DecodeMetadata(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalidMetadata) {
					t.Fatalf("err = %v, want ErrInvalidMetadata", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if set.Offset() != tt.offset {
				t.Errorf("offset %d, want %d", set.Offset(), tt.offset)
			}
			var got [][2]int64
			for lo, hi := range set.Ranges() {
				got = append(got, [2]int64{lo, hi})
			}
			if len(got) != len(tt.wantSpan) {
				t.Fatalf("ranges %v, want %v", got, tt.wantSpan)
			}
			for i := range got {
				if got[i] != tt.wantSpan[i] {
					t.Fatalf("ranges %v, want %v", got, tt.wantSpan)
				}
			}
		})
	}
}

func FuzzDecodeMetadata(f *testing.F) {
	f.Add("")
	f.Add(rawMetadata(10, 2, 3))
	f.Add(rawMetadata(10, 0, 1, 1, 2))
	f.Add(rawMetadata(math.MaxInt64-1, 0, 2))
	f.Add("kg1:")
	f.Add("kg1:gA")
	f.Fuzz(func(t *testing.T, s string) {
		set, err := DecodeMetadata(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidMetadata) {
				t.Fatalf("error %v does not wrap ErrInvalidMetadata", err)
			}
			return
		}
		if set.Offset() < 0 {
			t.Fatalf("negative offset %d", set.Offset())
		}
		var spans []span
		prevHi := int64(-1)
		for lo, hi := range set.Ranges() {
			switch {
			case lo < set.Offset():
				t.Fatalf("range [%d,%d] below offset %d", lo, hi, set.Offset())
			case hi < lo:
				t.Fatalf("range [%d,%d] reversed", lo, hi)
			case len(spans) > 0 && lo <= prevHi+1:
				t.Fatalf("range [%d,%d] overlaps or touches the previous one ending at %d", lo, hi, prevHi)
			}
			if !set.Skip(lo) || !set.Skip(hi) {
				t.Fatalf("range [%d,%d] not reported by Skip", lo, hi)
			}
			if lo > 0 && !(len(spans) > 0 && prevHi == lo-1) && set.Skip(lo-1) {
				t.Fatalf("Skip(%d) true outside the ranges", lo-1)
			}
			spans = append(spans, span{lo, hi})
			prevHi = hi
		}
		if len(spans) == 0 {
			return
		}
		again, err := DecodeMetadata(encodeMetadata(set.Offset(), spans, math.MaxInt32))
		if err != nil {
			t.Fatalf("re-encoded set does not decode: %v", err)
		}
		if again.Offset() != set.Offset() || again.Len() != set.Len() {
			t.Fatalf("re-encoded set differs: offset %d len %d, want %d len %d",
				again.Offset(), again.Len(), set.Offset(), set.Len())
		}
	})
}
