package verify

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
)

// Violations found by [Check], matched by the error [Report.Err] returns.
var (
	// ErrLost means an acknowledged record was never read back.
	ErrLost = errors.New("verify: acknowledged records lost")

	// ErrDuplicated means a record was read back more than once.
	ErrDuplicated = errors.New("verify: records duplicated")

	// ErrReordered means a record was read back after a later record of
	// the same key, or a key's records were spread over partitions.
	ErrReordered = errors.New("verify: records reordered within a key")
)

// SampleSize is how many example values a [Report] keeps per kind of
// violation.
const SampleSize = 10

// Record is one record read back: where it was and the workload value it
// carries.
type Record struct {
	Partition int32 `json:"partition"`
	Offset    int64 `json:"offset"`
	Value     Value `json:"value"`
}

// Report is the judgement of one run: counts of acknowledged and read
// records and of each kind of violation, with a few examples of each.
type Report struct {
	Acked          int `json:"acked"`           // distinct values acknowledged
	Read           int `json:"read"`            // records read back, copies included
	Lost           int `json:"lost"`            // acknowledged, never read back
	Duplicated     int `json:"duplicated"`      // extra copies read back
	Reordered      int `json:"reordered"`       // read after a higher sequence of the same key in the same partition
	UnackedPresent int `json:"unacked_present"` // read back, never acknowledged
	SplitKeys      int `json:"split_keys"`      // keys read back from more than one partition

	// LostSample, DuplicatedSample and ReorderedSample hold the first
	// SampleSize values of each kind, ordered by key and sequence.
	LostSample       []Value `json:"lost_sample,omitempty"`
	DuplicatedSample []Value `json:"duplicated_sample,omitempty"`
	ReorderedSample  []Value `json:"reordered_sample,omitempty"`
}

// Check judges a run: acked are the values the producer saw acknowledged,
// in any order (repeats count once); read are the records read back, in any
// order; Check orders them by partition and offset. A key's order is
// judged within each partition; a key found in several partitions is
// counted in SplitKeys.
func Check(acked []Value, read []Record) Report {
	ackedSet := make(map[Value]bool, len(acked))
	for _, v := range acked {
		ackedSet[v] = true
	}
	recs := slices.Clone(read)
	slices.SortStableFunc(recs, func(a, b Record) int {
		return cmp.Or(cmp.Compare(a.Partition, b.Partition), cmp.Compare(a.Offset, b.Offset))
	})

	type keyPart struct {
		key       int
		partition int32
	}
	seen := make(map[Value]bool, len(recs))
	maxSeq := map[keyPart]int{}
	partitionOf := map[int]int32{}
	split := map[int]bool{}
	rep := Report{Acked: len(ackedSet), Read: len(recs)}
	var dup, reord []Value
	for _, r := range recs {
		v := r.Value
		if p, ok := partitionOf[v.Key]; !ok {
			partitionOf[v.Key] = r.Partition
		} else if p != r.Partition {
			split[v.Key] = true
		}
		if seen[v] {
			rep.Duplicated++
			dup = append(dup, v)
			continue
		}
		seen[v] = true
		if !ackedSet[v] {
			rep.UnackedPresent++
		}
		kp := keyPart{v.Key, r.Partition}
		if m, ok := maxSeq[kp]; ok && v.Seq < m {
			rep.Reordered++
			reord = append(reord, v)
			continue
		}
		maxSeq[kp] = v.Seq
	}
	var lost []Value
	for v := range ackedSet {
		if !seen[v] {
			lost = append(lost, v)
		}
	}
	rep.Lost = len(lost)
	rep.SplitKeys = len(split)
	rep.LostSample = sample(lost)
	rep.DuplicatedSample = sample(dup)
	rep.ReorderedSample = sample(reord)
	return rep
}

// sample sorts vs by key and sequence and returns at most SampleSize of
// them.
func sample(vs []Value) []Value {
	if len(vs) == 0 {
		return nil
	}
	slices.SortFunc(vs, func(a, b Value) int { return cmp.Or(cmp.Compare(a.Key, b.Key), cmp.Compare(a.Seq, b.Seq)) })
	vs = slices.Compact(vs)
	return slices.Clone(vs[:min(len(vs), SampleSize)])
}

// Clean reports whether the run shows no loss, duplicate or reorder.
func (r Report) Clean() bool { return r.Err() == nil }

// Err returns nil if nothing was lost, duplicated or reordered; otherwise
// an error joining one error per kind of violation, matching [ErrLost],
// [ErrDuplicated] or [ErrReordered], with examples.
func (r Report) Err() error {
	var errs []error
	if r.Lost > 0 {
		errs = append(errs, fmt.Errorf("%w: %d of %d, e.g. %v", ErrLost, r.Lost, r.Acked, r.LostSample))
	}
	if r.Duplicated > 0 {
		errs = append(errs, fmt.Errorf("%w: %d extra copies, e.g. %v", ErrDuplicated, r.Duplicated, r.DuplicatedSample))
	}
	if r.Reordered > 0 {
		errs = append(errs, fmt.Errorf("%w: %d records, e.g. %v", ErrReordered, r.Reordered, r.ReorderedSample))
	}
	if r.SplitKeys > 0 {
		errs = append(errs, fmt.Errorf("%w: %d keys were written to more than one partition", ErrReordered, r.SplitKeys))
	}
	return errors.Join(errs...)
}
