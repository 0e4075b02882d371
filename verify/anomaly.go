package verify

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// AnomalyKind names an anomaly as Jepsen's Kafka analyses do; see
// ANOMALIES.md in the project's shared notes for the definitions.
type AnomalyKind string

// The anomalies [Analyze] names for the producer workload.
const (
	// LostWrite: an acknowledged record is never read, although a reader read
	// past its offset in its partition (or read a record of that partition
	// acknowledged after it).
	LostWrite AnomalyKind = "lost-write"
	// Unseen: an acknowledged record is never read, and no reader read past
	// it (lost, or the readers stopped early).
	Unseen AnomalyKind = "unseen"
	// Duplicate: one value is stored at two or more offsets.
	Duplicate AnomalyKind = "duplicate"
	// InconsistentOffsets: reads of one partition and offset returned
	// different values.
	InconsistentOffsets AnomalyKind = "inconsistent-offsets"
	// NonmonotonicPoll: one reader's successive records of a partition went
	// backwards (or repeated) in offset.
	NonmonotonicPoll AnomalyKind = "nonmonotonic-poll"
	// PollSkip: one reader's successive records of a partition jumped over
	// offsets that hold records.
	PollSkip AnomalyKind = "poll-skip"
	// ReorderedWithinKey: two acknowledged records of one key, the later
	// sent stored at the lower offset of their partition.
	ReorderedWithinKey AnomalyKind = "reordered-within-key"
	// Indeterminate is not an anomaly: a record whose send failed or has no
	// outcome was read anyway. It is counted.
	Indeterminate AnomalyKind = "indeterminate"
)

// AnomalyKinds returns every kind [Analyze] reports, in report order.
func AnomalyKinds() []AnomalyKind {
	return []AnomalyKind{LostWrite, Unseen, Duplicate, InconsistentOffsets, NonmonotonicPoll, PollSkip, ReorderedWithinKey, Indeterminate}
}

// MaxExamples is how many examples an [Anomaly] keeps.
const MaxExamples = 5

// Example is one instance of an anomaly.
type Example struct {
	Value     Value         `json:"value"`
	Partition int32         `json:"partition"`
	Offset    int64         `json:"offset"` // -1 when unknown
	Seed      int64         `json:"seed"`
	At        time.Duration `json:"at_ns"` // since the workload started: the ack, or the read
	// Faults are the faults in force at At (see [ActiveFaults]).
	Faults []string `json:"faults,omitempty"`
	// Note says what else is involved, such as "also at 0/17".
	Note string `json:"note,omitempty"`
}

// String formats the example on one line.
func (e Example) String() string {
	s := fmt.Sprintf("%s at %d/%d, seed %d, %v", e.Value, e.Partition, e.Offset, e.Seed, e.At.Round(time.Millisecond))
	if e.Note != "" {
		s += " (" + e.Note + ")"
	}
	if len(e.Faults) > 0 {
		s += ", during " + strings.Join(e.Faults, ", ")
	}
	return s
}

// Anomaly is one kind of anomaly found: how many, and up to [MaxExamples]
// examples ordered by partition and offset.
type Anomaly struct {
	Kind     AnomalyKind `json:"kind"`
	Count    int         `json:"count"`
	Examples []Example   `json:"examples,omitempty"`
}

// Anomalies lists the kinds found, in the order of [AnomalyKinds]; a kind
// not found is absent.
type Anomalies []Anomaly

// Count returns how many of kind were found.
func (as Anomalies) Count(kind AnomalyKind) int {
	for _, a := range as {
		if a.Kind == kind {
			return a.Count
		}
	}
	return 0
}

// Get returns the anomaly of kind, and whether it was found.
func (as Anomalies) Get(kind AnomalyKind) (Anomaly, bool) {
	for _, a := range as {
		if a.Kind == kind {
			return a, true
		}
	}
	return Anomaly{}, false
}

// String sums the anomalies up, such as "lost-write 3, duplicate 1", or
// "none"; indeterminate records are not anomalies and are left out.
func (as Anomalies) String() string {
	var parts []string
	for _, a := range as {
		if a.Kind != Indeterminate {
			parts = append(parts, fmt.Sprintf("%s %d", a.Kind, a.Count))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// ErrAnomaly is matched by the error [Result.Err] returns for an anomaly no
// preset allows (inconsistent-offsets, nonmonotonic-poll, poll-skip).
var ErrAnomaly = errors.New("verify: anomaly")

// neverAllowed are the anomalies no preset and no fault allows: they are
// the broker's or the reader's, not the producer's.
var neverAllowed = []AnomalyKind{InconsistentOffsets, NonmonotonicPoll, PollSkip}

// Send is the outcome of one record handed to the producer.
type Send struct {
	Value Value `json:"value"`
	Acked bool  `json:"acked"`
	// Partition and Offset are where the acknowledgement put it (-1 if
	// unknown, or not acknowledged).
	Partition int32         `json:"partition"`
	Offset    int64         `json:"offset"`
	At        time.Duration `json:"at_ns"` // when the outcome arrived, since the workload started
}

// Poll is one batch of records a reader got, in the order it got them.
type Poll struct {
	Reader  int           `json:"reader"`
	At      time.Duration `json:"at_ns"` // since the workload started
	Records []Record      `json:"records"`
}

// History is everything a run's clients did: each send's outcome, each
// poll of each reader, and the faults.
type History struct {
	Seed   int64
	Sends  []Send
	Polls  []Poll
	Faults []FaultEvent
}

// position is a place in the topic: a partition and an offset.
type position struct {
	partition int32
	offset    int64
}

// Analyze names the anomalies of a history (see [AnomalyKinds]), each with
// a count and up to [MaxExamples] examples.
func Analyze(h History) Anomalies {
	acked := map[Value]Send{}
	var ackOrder []Value
	for _, s := range h.Sends {
		if _, dup := acked[s.Value]; s.Acked && !dup {
			acked[s.Value] = s
			ackOrder = append(ackOrder, s.Value)
		}
	}
	// Every read: the values seen at each position, the positions of each
	// value, and when each was first read.
	valuesAt := map[position][]Value{}
	positionsOf := map[Value][]position{}
	firstRead := map[Value]time.Duration{}
	readAt := map[position]time.Duration{}
	maxRead := map[int32]int64{}
	for _, p := range h.Polls {
		for _, r := range p.Records {
			pos := position{r.Partition, r.Offset}
			if !slices.Contains(valuesAt[pos], r.Value) {
				valuesAt[pos] = append(valuesAt[pos], r.Value)
			}
			if !slices.Contains(positionsOf[r.Value], pos) {
				positionsOf[r.Value] = append(positionsOf[r.Value], pos)
			}
			if _, ok := firstRead[r.Value]; !ok {
				firstRead[r.Value] = p.At
			}
			if _, ok := readAt[pos]; !ok {
				readAt[pos] = p.At
			}
			if m, ok := maxRead[r.Partition]; !ok || r.Offset > m {
				maxRead[r.Partition] = r.Offset
			}
		}
	}
	found := map[AnomalyKind][]Example{}
	ex := func(v Value, pos position, at time.Duration, note string) Example {
		return Example{Value: v, Partition: pos.partition, Offset: pos.offset, Seed: h.Seed, At: at,
			Faults: ActiveFaults(h.Faults, at), Note: note}
	}

	// lost-write and unseen: acknowledged, never read.
	for i, v := range ackOrder {
		s := acked[v]
		if len(positionsOf[v]) > 0 {
			continue
		}
		pos := position{s.Partition, s.Offset}
		m, read := maxRead[s.Partition]
		past := read && s.Offset >= 0 && m >= s.Offset
		note := ""
		if past {
			note = fmt.Sprintf("read up to offset %d", m)
		}
		for _, later := range ackOrder[i+1:] {
			if past {
				break
			}
			if ls := acked[later]; ls.Partition == s.Partition && s.Partition >= 0 && len(positionsOf[later]) > 0 {
				past, note = true, fmt.Sprintf("%s, acknowledged later, was read", later)
			}
		}
		if past {
			found[LostWrite] = append(found[LostWrite], ex(v, pos, s.At, note))
		} else {
			found[Unseen] = append(found[Unseen], ex(v, pos, s.At, ""))
		}
	}

	// duplicate, indeterminate: per value read.
	for v, ps := range positionsOf {
		slices.SortFunc(ps, comparePositions)
		for _, p := range ps[1:] {
			found[Duplicate] = append(found[Duplicate], ex(v, p, readAt[p], fmt.Sprintf("also at %d/%d", ps[0].partition, ps[0].offset)))
		}
		if _, ok := acked[v]; !ok {
			found[Indeterminate] = append(found[Indeterminate], ex(v, ps[0], firstRead[v], "never acknowledged"))
		}
	}

	// inconsistent-offsets: one position, several values.
	for pos, vs := range valuesAt {
		if len(vs) > 1 {
			others := make([]string, len(vs)-1)
			for i, o := range vs[1:] {
				others[i] = o.String()
			}
			found[InconsistentOffsets] = append(found[InconsistentOffsets],
				ex(vs[0], pos, readAt[pos], "also read there: "+strings.Join(others, ", ")))
		}
	}

	// nonmonotonic-poll and poll-skip: each reader's records of each
	// partition, in the order it got them.
	type readerPart struct {
		reader    int
		partition int32
	}
	last := map[readerPart]Record{}
	for _, p := range h.Polls {
		for _, r := range p.Records {
			rp := readerPart{p.Reader, r.Partition}
			prev, ok := last[rp]
			last[rp] = r
			if !ok {
				continue
			}
			pos := position{r.Partition, r.Offset}
			if r.Offset <= prev.Offset {
				found[NonmonotonicPoll] = append(found[NonmonotonicPoll],
					ex(r.Value, pos, p.At, fmt.Sprintf("reader %d read offset %d before it", p.Reader, prev.Offset)))
				continue
			}
			for o := prev.Offset + 1; o < r.Offset; o++ {
				if vs, held := valuesAt[position{r.Partition, o}]; held {
					found[PollSkip] = append(found[PollSkip], ex(vs[0], position{r.Partition, o}, p.At,
						fmt.Sprintf("reader %d went from offset %d to %d", p.Reader, prev.Offset, r.Offset)))
					break
				}
			}
		}
	}

	// reordered-within-key: acknowledged records of one key stored against
	// the order they were sent in (their sequence numbers).
	type keyPart struct {
		key       int
		partition int32
	}
	var stored []Record
	for v, ps := range positionsOf {
		if _, ok := acked[v]; ok {
			stored = append(stored, Record{Partition: ps[0].partition, Offset: ps[0].offset, Value: v})
		}
	}
	slices.SortFunc(stored, func(a, b Record) int {
		return comparePositions(position{a.Partition, a.Offset}, position{b.Partition, b.Offset})
	})
	maxSeq := map[keyPart]Record{}
	for _, r := range stored {
		kp := keyPart{r.Value.Key, r.Partition}
		if m, ok := maxSeq[kp]; ok && r.Value.Seq < m.Value.Seq {
			found[ReorderedWithinKey] = append(found[ReorderedWithinKey], ex(r.Value, position{r.Partition, r.Offset},
				acked[r.Value].At, fmt.Sprintf("after %s at offset %d", m.Value, m.Offset)))
			continue
		}
		maxSeq[kp] = r
	}

	out := Anomalies{}
	for _, k := range AnomalyKinds() {
		exs := found[k]
		if len(exs) == 0 {
			continue
		}
		slices.SortFunc(exs, func(a, b Example) int {
			return cmp.Or(comparePositions(position{a.Partition, a.Offset}, position{b.Partition, b.Offset}),
				cmp.Compare(a.Value.Key, b.Value.Key), cmp.Compare(a.Value.Seq, b.Value.Seq))
		})
		out = append(out, Anomaly{Kind: k, Count: len(exs), Examples: slices.Clone(exs[:min(len(exs), MaxExamples)])})
	}
	return out
}

func comparePositions(a, b position) int {
	return cmp.Or(cmp.Compare(a.partition, b.partition), cmp.Compare(a.offset, b.offset))
}
