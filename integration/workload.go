package integration

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
)

// keyedValue is a workload record's value: the key and its sequence number
// within the key, "k07:000123".
func keyedValue(key string, seq int) string { return fmt.Sprintf("%s:%06d", key, seq) }

func parseKeyedValue(v string) (key string, seq int, err error) {
	key, s, ok := strings.Cut(v, ":")
	if !ok {
		return "", 0, fmt.Errorf("value %q is not key:seq", v)
	}
	seq, err = strconv.Atoi(s)
	if err != nil {
		return "", 0, fmt.Errorf("value %q: %w", v, err)
	}
	return key, seq, nil
}

// verdict compares what a producer had acknowledged with what a reader found.
type verdict struct {
	Acked      int      // records the producer saw acknowledged
	Read       int      // records read back
	Lost       []string // acknowledged but never read
	Duplicated []string // read more than once
	Reordered  []string // read after a higher sequence number of the same key
	Unacked    int      // read although the producer did not see them acknowledged
	Malformed  []string // values that are not key:seq
}

func (v verdict) String() string {
	return fmt.Sprintf("acked=%d read=%d lost=%d duplicated=%d reordered=%d unacked-but-written=%d malformed=%d",
		v.Acked, v.Read, len(v.Lost), len(v.Duplicated), len(v.Reordered), v.Unacked, len(v.Malformed))
}

// clean reports whether nothing was lost, duplicated, reordered or garbled.
func (v verdict) clean() bool {
	return len(v.Lost) == 0 && len(v.Duplicated) == 0 && len(v.Reordered) == 0 && len(v.Malformed) == 0
}

// check judges the records read from every partition (each in offset order)
// against the set of acknowledged values.
func check(acked map[string]bool, read map[int32][]*kgo.Record) verdict {
	v := verdict{Acked: len(acked)}
	seen := map[string]int{}
	lastSeq := map[string]int{}
	parts := make([]int32, 0, len(read))
	for p := range read {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	for _, p := range parts {
		for _, r := range read[p] {
			v.Read++
			val := string(r.Value)
			key, seq, err := parseKeyedValue(val)
			if err != nil {
				v.Malformed = append(v.Malformed, val)
				continue
			}
			seen[val]++
			if seen[val] == 2 {
				v.Duplicated = append(v.Duplicated, val)
			}
			if last, ok := lastSeq[key]; ok && seq <= last && seen[val] == 1 {
				v.Reordered = append(v.Reordered, fmt.Sprintf("%s after seq %d (partition %d offset %d)", val, last, p, r.Offset))
			}
			lastSeq[key] = max(lastSeq[key], seq)
			if !acked[val] && seen[val] == 1 {
				v.Unacked++
			}
		}
	}
	for val := range acked {
		if seen[val] == 0 {
			v.Lost = append(v.Lost, val)
		}
	}
	slices.Sort(v.Lost)
	return v
}

// firstN returns at most n items, for error messages.
func firstN(s []string, n int) []string {
	if len(s) <= n {
		return s
	}
	return append(slices.Clone(s[:n]), fmt.Sprintf("... %d more", len(s)-n))
}
