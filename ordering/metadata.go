package ordering

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"iter"
	"math"
	"sort"
	"strings"
)

// DefaultMetadataMaxBytes is the default limit on the length of the commit
// metadata a Tracker writes. It is the default of Kafka's broker setting
// offset.metadata.max.bytes; a longer string makes the broker reject the
// whole commit with OFFSET_METADATA_TOO_LARGE.
const DefaultMetadataMaxBytes = 4096

// metadataPrefix starts every metadata string this package writes; the digit
// is the format version.
const metadataPrefix = "kg1:"

var metadataEncoding = base64.RawURLEncoding.Strict()

// span is the closed offset range [lo, hi].
type span struct{ lo, hi int64 }

// SkipSet is the set of offsets that commit metadata claims were already
// processed: records at these offsets must not run again. The zero value is
// the empty set. A SkipSet is immutable and safe for concurrent use.
type SkipSet struct {
	offset int64  // the committed offset the set is relative to
	spans  []span // sorted, disjoint, not adjacent, all >= offset
}

// Offset returns the committed offset the metadata was written with.
func (s SkipSet) Offset() int64 { return s.offset }

// Skip reports whether the record at offset was already processed.
func (s SkipSet) Skip(offset int64) bool {
	i := sort.Search(len(s.spans), func(i int) bool { return s.spans[i].hi >= offset })
	return i < len(s.spans) && s.spans[i].lo <= offset
}

// covers reports whether one run of the set holds every offset from lo to hi.
func (s SkipSet) covers(lo, hi int64) bool {
	i := sort.Search(len(s.spans), func(i int) bool { return s.spans[i].hi >= lo })
	return i < len(s.spans) && s.spans[i].lo <= lo && s.spans[i].hi >= hi
}

// Len returns the number of offsets in the set, at most math.MaxInt64.
func (s SkipSet) Len() int64 {
	var n uint64
	for _, sp := range s.spans {
		n += uint64(sp.hi-sp.lo) + 1 // spans lie in [0, MaxInt64]: no overflow
	}
	return int64(min(n, math.MaxInt64))
}

// Ranges yields the set as closed ranges [first, last] in ascending order.
func (s SkipSet) Ranges() iter.Seq2[int64, int64] {
	return func(yield func(int64, int64) bool) {
		for _, sp := range s.spans {
			if !yield(sp.lo, sp.hi) {
				return
			}
		}
	}
}

// DecodeMetadata decodes commit metadata written by a Tracker. The empty
// string decodes to the empty set. Any other string that is not well-formed
// metadata of a known version returns an error wrapping ErrInvalidMetadata;
// the caller should then skip nothing, which at worst runs some records
// again.
func DecodeMetadata(metadata string) (SkipSet, error) {
	if metadata == "" {
		return SkipSet{}, nil
	}
	rest, ok := strings.CutPrefix(metadata, metadataPrefix)
	if !ok {
		return SkipSet{}, fmt.Errorf("%w: missing %q prefix", ErrInvalidMetadata, metadataPrefix)
	}
	raw, err := metadataEncoding.DecodeString(rest)
	if err != nil {
		return SkipSet{}, fmt.Errorf("%w: %w", ErrInvalidMetadata, err)
	}
	const maxOffset = uint64(math.MaxInt64)
	next := func(what string) (uint64, error) {
		v, n := binary.Uvarint(raw)
		if n <= 0 {
			return 0, fmt.Errorf("%w: truncated or overflowing %s", ErrInvalidMetadata, what)
		}
		raw = raw[n:]
		return v, nil
	}
	base, err := next("offset")
	if err != nil {
		return SkipSet{}, err
	}
	if base > maxOffset {
		return SkipSet{}, fmt.Errorf("%w: offset %d out of range", ErrInvalidMetadata, base)
	}
	s := SkipSet{offset: int64(base)}
	pos := base // first offset not yet described; may reach maxOffset+1
	for len(raw) > 0 {
		gap, err := next("gap")
		if err != nil {
			return SkipSet{}, err
		}
		if gap == 0 && len(s.spans) > 0 {
			return SkipSet{}, fmt.Errorf("%w: empty gap between done runs", ErrInvalidMetadata)
		}
		if pos > maxOffset || gap > maxOffset-pos {
			return SkipSet{}, fmt.Errorf("%w: run beyond the largest offset", ErrInvalidMetadata)
		}
		lo := pos + gap
		if len(raw) == 0 {
			return SkipSet{}, fmt.Errorf("%w: gap without a done run", ErrInvalidMetadata)
		}
		done, err := next("done run")
		if err != nil {
			return SkipSet{}, err
		}
		if done == 0 {
			return SkipSet{}, fmt.Errorf("%w: empty done run", ErrInvalidMetadata)
		}
		if done-1 > maxOffset-lo {
			return SkipSet{}, fmt.Errorf("%w: run beyond the largest offset", ErrInvalidMetadata)
		}
		hi := lo + done - 1
		s.spans = append(s.spans, span{lo: int64(lo), hi: int64(hi)})
		pos = hi + 1
	}
	return s, nil
}

// encodeMetadata encodes spans (sorted, disjoint, not adjacent, all >= offset)
// relative to offset, in at most maxBytes bytes. Spans that do not fit are
// dropped from the tail. It returns "" when no span fits.
func encodeMetadata(offset int64, spans []span, maxBytes int) string {
	budget := maxBytes - len(metadataPrefix)
	if len(spans) == 0 || budget <= 0 || offset < 0 {
		return ""
	}
	maxRaw := budget * 3 / 4
	for metadataEncoding.EncodedLen(maxRaw+1) <= budget {
		maxRaw++
	}
	buf := binary.AppendUvarint(make([]byte, 0, min(maxRaw, 64)), uint64(offset))
	if len(buf) > maxRaw {
		return ""
	}
	pairs := 0
	pos := offset
	var pair [2 * binary.MaxVarintLen64]byte
	for _, sp := range spans {
		p := binary.AppendUvarint(pair[:0], uint64(sp.lo-pos))
		p = binary.AppendUvarint(p, uint64(sp.hi-sp.lo)+1)
		if len(buf)+len(p) > maxRaw {
			break
		}
		buf = append(buf, p...)
		pairs++
		pos = sp.hi + 1
	}
	if pairs == 0 {
		return ""
	}
	return metadataPrefix + metadataEncoding.EncodeToString(buf)
}
