package verify

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// AnomalyKind names an anomaly as Jepsen's Kafka analyses do; see
// ANOMALIES.md in the project's shared notes for the definitions.
type AnomalyKind string

// The anomalies [Analyze] names for the producer workload and [CheckQueue]
// for the queue workload (see [AnomalyKinds] and [QueueKinds]).
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
	// backwards (or repeated) in offset; for a group member, within one
	// generation of the group (see [CheckQueue]).
	NonmonotonicPoll AnomalyKind = "nonmonotonic-poll"
	// PollSkip: one reader's successive records of a partition jumped over
	// offsets that hold records; for a group member, within one generation
	// of the group.
	PollSkip AnomalyKind = "poll-skip"
	// ReorderedWithinKey: two acknowledged records of one key, the later
	// sent stored at the lower offset of their partition.
	ReorderedWithinKey AnomalyKind = "reordered-within-key"
	// Indeterminate is not an anomaly: a record whose send failed or has no
	// outcome was read anyway. It is counted.
	Indeterminate AnomalyKind = "indeterminate"
	// AtLeastOnceViolation (queue workload): a committed offset of the group
	// passed a record of the log (or the commit's metadata named it done)
	// that no consumer had handled when the commit was observed: the commit
	// got ahead of processing.
	AtLeastOnceViolation AnomalyKind = "at-least-once-violation"
	// UnexplainedRehandle (queue workload): a record ran again although,
	// when its consumer got it, the group's last observed commit already
	// covered it. Re-runs are the at-least-once cost only for records in
	// flight, handled but not committed, when their consumer crashed or
	// lost the partition.
	UnexplainedRehandle AnomalyKind = "unexplained-rehandle"
)

// AnomalyKinds returns every kind [Analyze] reports, in report order.
func AnomalyKinds() []AnomalyKind {
	return []AnomalyKind{LostWrite, Unseen, Duplicate, InconsistentOffsets, NonmonotonicPoll, PollSkip, ReorderedWithinKey, Indeterminate}
}

// QueueKinds returns every kind [CheckQueue] reports, in report order.
func QueueKinds() []AnomalyKind {
	return []AnomalyKind{Unseen, AtLeastOnceViolation, ReorderedWithinKey, InconsistentOffsets, NonmonotonicPoll, PollSkip, UnexplainedRehandle}
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
	// Consumer is the group member involved (queue workload), such as
	// "c1.2": slot 1, third incarnation.
	Consumer string `json:"consumer,omitempty"`
	// Note says what else is involved, such as "also at 0/17".
	Note string `json:"note,omitempty"`
}

// String formats the example on one line; a zero At (no time known) is
// left out.
func (e Example) String() string {
	s := fmt.Sprintf("%s at %d/%d", e.Value, e.Partition, e.Offset)
	if e.Consumer != "" {
		s += " by " + e.Consumer
	}
	s += fmt.Sprintf(", seed %d", e.Seed)
	if e.At != 0 {
		s += ", " + e.At.Round(time.Millisecond).String()
	}
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

// anomalyJSON is an Anomaly as JSON: the kind also under "anomaly", the
// name the queue workload's JSON first gave it.
type anomalyJSON struct {
	Kind     AnomalyKind `json:"kind"`
	Anomaly  AnomalyKind `json:"anomaly"`
	Count    int         `json:"count"`
	Examples []Example   `json:"examples,omitempty"`
}

// MarshalJSON writes the kind under "kind" and, for scripts written
// against the first queue workload, "anomaly".
func (a Anomaly) MarshalJSON() ([]byte, error) {
	return json.Marshal(anomalyJSON{Kind: a.Kind, Anomaly: a.Kind, Count: a.Count, Examples: a.Examples})
}

// UnmarshalJSON reads what MarshalJSON writes, the kind from "kind" or
// else "anomaly".
func (a *Anomaly) UnmarshalJSON(b []byte) error {
	var j anomalyJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*a = Anomaly{Kind: cmp.Or(j.Kind, j.Anomaly), Count: j.Count, Examples: j.Examples}
	return nil
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

// Total returns how many anomalies were found, indeterminate records (not
// anomalies) left out.
func (as Anomalies) Total() int {
	n := 0
	for _, a := range as {
		if a.Kind != Indeterminate {
			n += a.Count
		}
	}
	return n
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
	var steps []pollStep
	for _, p := range h.Polls {
		for _, r := range p.Records {
			steps = append(steps, pollStep{reader: strconv.Itoa(p.Reader), at: p.At, rec: r})
		}
	}
	pollOrder(steps, "reader", func(pos position) (Value, bool) {
		vs, ok := valuesAt[pos]
		if !ok {
			return Value{}, false
		}
		return vs[0], true
	}, func(k AnomalyKind, v Value, pos position, s pollStep, note string) {
		found[k] = append(found[k], ex(v, pos, s.at, note))
	})

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

// pollStep is one record a reader got: which reader, in which epoch of its
// assignment, and when.
type pollStep struct {
	reader string // such as "2" (a read-back reader) or "c1.0" (a group member)
	// epoch is the reader's group session and generation: positions are
	// compared within one epoch only, since a rebalance may hand a
	// partition back to be read again from the committed offset.
	epoch int64
	at    time.Duration
	rec   Record
}

// pollOrder names nonmonotonic-poll and poll-skip in each reader's
// successive records of each partition within one epoch, as Jepsen's Kafka
// checker does: a record at or below the reader's previous offset, or
// above it with a record of the log (held reports one) in between. steps
// are in the order each reader got them; noun names a reader in notes
// ("reader", "consumer"); add receives each finding with the record it
// concerns (for a skip, the first record skipped).
func pollOrder(steps []pollStep, noun string, held func(position) (Value, bool), add func(AnomalyKind, Value, position, pollStep, string)) {
	type readerPart struct {
		reader    string
		epoch     int64
		partition int32
	}
	last := map[readerPart]int64{}
	for _, s := range steps {
		r := s.rec
		rp := readerPart{s.reader, s.epoch, r.Partition}
		prev, ok := last[rp]
		last[rp] = r.Offset
		if !ok {
			continue
		}
		if r.Offset <= prev {
			add(NonmonotonicPoll, r.Value, position{r.Partition, r.Offset}, s,
				fmt.Sprintf("%s %s read offset %d before it", noun, s.reader, prev))
			continue
		}
		for o := prev + 1; o < r.Offset; o++ {
			if v, ok := held(position{r.Partition, o}); ok {
				add(PollSkip, v, position{r.Partition, o}, s,
					fmt.Sprintf("%s %s went from offset %d to %d", noun, s.reader, prev, r.Offset))
				break
			}
		}
	}
}

func comparePositions(a, b position) int {
	return cmp.Or(cmp.Compare(a.partition, b.partition), cmp.Compare(a.offset, b.offset))
}
