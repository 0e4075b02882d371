package verify

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kafkaguard/kafkaguard/consume"
)

// ErrQueueAnomaly is matched by [QueueReport.Err] when a queue history shows
// an anomaly; it matches [ErrAnomaly] too.
var ErrQueueAnomaly = fmt.Errorf("%w in the queue workload", ErrAnomaly)

// Handle is one record a consumer's handler finished with success: which
// consumer (slot and incarnation, such as "c1.2"), where the record was,
// its value, and when the handler started and finished, from the start of
// the run. Seq orders the handles of all consumers by finish.
type Handle struct {
	Seq       int64         `json:"seq"`
	Consumer  string        `json:"consumer"`
	Partition int32         `json:"partition"`
	Offset    int64         `json:"offset"`
	Value     Value         `json:"value"`
	Start     time.Duration `json:"start_ns"`
	At        time.Duration `json:"at_ns"`
}

// QueueCommit is one observation of the group's committed offset of a
// partition: At is when the answer came back (the commit happened
// before), Done the ranges [first, last] above Offset that the commit's
// metadata names handled (see package ordering).
type QueueCommit struct {
	At        time.Duration `json:"at_ns"`
	Partition int32         `json:"partition"`
	Offset    int64         `json:"offset"`
	Done      [][2]int64    `json:"done,omitempty"`
}

// covers reports whether the commit says the record at offset was handled.
func (c QueueCommit) covers(offset int64) bool {
	if offset < c.Offset {
		return true
	}
	for _, r := range c.Done {
		if r[0] <= offset && offset <= r[1] {
			return true
		}
	}
	return false
}

// Delivery is one record a group member's poll returned to it, in the order
// it got them: which member, in which of its group sessions and which
// generation of the group (a rebalance starts a new one), when, and the
// record.
type Delivery struct {
	Consumer string `json:"consumer"`
	// Session counts the member's group sessions that ended in an error
	// before (kgo then drops every partition and joins again; a coordinator
	// that moved may give out a generation number already seen).
	Session    int32         `json:"session"`
	Generation int32         `json:"generation"`
	At         time.Duration `json:"at_ns"`
	Partition  int32         `json:"partition"`
	Offset     int64         `json:"offset"`
	Value      Value         `json:"value"`
}

// QueueCrash is one consumer crash: which consumer and when.
type QueueCrash struct {
	At       time.Duration `json:"at_ns"`
	Consumer string        `json:"consumer"`
}

// QueueHistory is everything a queue run did that [CheckQueue] judges.
type QueueHistory struct {
	// Order is the consumers' order mode: it says which order they promise.
	Order consume.Order
	// Acked are the records the producer saw acknowledged.
	Acked []Ack
	// Log is the topic read back after the run, every record of every
	// partition.
	Log []Record
	// Handles are the handled records, in any order (CheckQueue orders
	// them by Seq).
	Handles []Handle
	// Commits are the observations of the group's committed offsets, in
	// any order (CheckQueue orders them by At).
	Commits []QueueCommit
	// Deliveries are the records the members' polls returned, in the order
	// each member got them (CheckQueue keeps the order of each member's).
	Deliveries []Delivery
	// Crashes are the consumer crashes (not judged; they explain re-runs).
	Crashes []QueueCrash
	// Seed is the fault schedule's seed and Faults its events: examples
	// name the seed and the faults in force.
	Seed   int64
	Faults []FaultEvent
}

// QueueReport is the judgement of a queue history.
type QueueReport struct {
	Acked     int `json:"acked"`     // distinct values acknowledged
	Handled   int `json:"handled"`   // handles, re-runs included
	Distinct  int `json:"distinct"`  // distinct records handled
	Rehandled int `json:"rehandled"` // handles of a record handled before: the at-least-once cost
	// Indeterminate counts records handled that the producer never saw
	// acknowledged (an outcome-unknown send that landed): allowed.
	Indeterminate int `json:"indeterminate"`
	Crashes       int `json:"crashes"` // consumer crashes
	// Findings lists the anomalies found, in the order of [QueueKinds],
	// each with up to [MaxExamples] examples.
	Findings Anomalies `json:"anomalies,omitempty"`
}

// Count returns how many records show anomaly kind.
func (r QueueReport) Count(kind AnomalyKind) int { return r.Findings.Count(kind) }

// Anomalies returns the total count over every anomaly.
func (r QueueReport) Anomalies() int { return r.Findings.Total() }

// Err returns nil when the history shows no anomaly, otherwise an error
// matching [ErrQueueAnomaly] naming each with its count and examples.
func (r QueueReport) Err() error {
	if len(r.Findings) == 0 {
		return nil
	}
	parts := make([]string, len(r.Findings))
	for i, f := range r.Findings {
		ex := make([]string, len(f.Examples))
		for j, e := range f.Examples {
			ex[j] = e.String()
		}
		parts[i] = fmt.Sprintf("%s: %d, e.g. %s", f.Kind, f.Count, strings.Join(ex, "; "))
	}
	return fmt.Errorf("%w: %s", ErrQueueAnomaly, strings.Join(parts, "; "))
}

// findings collects anomalies with their first examples, naming the seed
// and the faults in force at each.
type findings struct {
	seed   int64
	faults []FaultEvent
	found  map[AnomalyKind]*Anomaly
}

func (fs *findings) add(kind AnomalyKind, e Example) {
	f := fs.found[kind]
	if f == nil {
		f = &Anomaly{Kind: kind}
		fs.found[kind] = f
	}
	f.Count++
	if len(f.Examples) < MaxExamples {
		e.Seed = fs.seed
		if e.At != 0 {
			e.Faults = ActiveFaults(fs.faults, e.At)
		}
		f.Examples = append(f.Examples, e)
	}
}

// CheckQueue judges a queue history:
//
//   - unseen: an acknowledged value no handle carries;
//   - at-least-once-violation: a record of the log below an observed
//     committed offset, or named done by its metadata, that no handler had
//     finished by the observation (handles finish before their record can
//     be committed, so this is sound at any sampling rate);
//   - reordered-within-key: with KeyOrder or PartitionOrder, a first handle
//     of a record after a handle of a later record of its key and partition
//     (re-runs after a crash are counted in Rehandled, not here);
//   - inconsistent-offsets: a handle whose partition and offset hold
//     another value, or none, in the log read back — the handler saw a
//     record that was not committed to the log (above the high watermark,
//     then truncated);
//   - nonmonotonic-poll and poll-skip: a member's successive deliveries of
//     a partition within one generation of the group (and one group
//     session) went back (or repeated), or jumped over an offset that holds
//     a record in the log. A new generation or session starts the member's
//     positions afresh: a rebalance may have taken a partition away and
//     given it back, to be read again from the committed offset, and a
//     member cannot tell that from a partition it kept;
//   - unexplained-rehandle: a handle of a record handled before whose
//     consumer got the record (its last delivery of it before the handle
//     started; the start itself when no delivery is recorded) after an
//     observation of a commit covering the record, with no later
//     observation before it that did not: the group had moved past the
//     record, yet a member was handed it again. A member that got the
//     record before the commit covered it and runs it afterwards is not
//     one: it lost the partition without knowing yet (its session expired)
//     while the next owner went on, the at-least-once cost.
//
// A handle of a value never acknowledged is indeterminate, not an anomaly;
// so is a send that failed: a producer cannot tell a failure that left a
// record in the log from one that did not, so handled records are not
// checked against failed sends.
func CheckQueue(h QueueHistory) QueueReport {
	handles := slices.Clone(h.Handles)
	slices.SortStableFunc(handles, func(a, b Handle) int { return cmp.Compare(a.Seq, b.Seq) })
	commits := slices.Clone(h.Commits)
	slices.SortStableFunc(commits, func(a, b QueueCommit) int { return cmp.Compare(a.At, b.At) })

	acked := map[Value]bool{}
	for _, a := range h.Acked {
		acked[a.Value] = true
	}
	logAt := map[position]Value{}
	byPartition := map[int32][]Record{}
	for _, r := range h.Log {
		logAt[position{r.Partition, r.Offset}] = r.Value
		byPartition[r.Partition] = append(byPartition[r.Partition], r)
	}
	for _, rs := range byPartition {
		slices.SortFunc(rs, func(a, b Record) int { return cmp.Compare(a.Offset, b.Offset) })
	}

	fs := &findings{seed: h.Seed, faults: h.Faults, found: map[AnomalyKind]*Anomaly{}}
	rep := QueueReport{Acked: len(acked), Handled: len(handles), Crashes: len(h.Crashes)}
	firstDone := map[position]time.Duration{} // when the first handle of a position finished
	handledValue := map[Value]bool{}
	type keyPart struct {
		key       int
		partition int32
	}
	maxFirst := map[keyPart]int64{} // highest offset handled so far, per key and partition
	keepsKeyOrder := h.Order == consume.KeyOrder || h.Order == consume.PartitionOrder
	type consumerPos struct {
		consumer string
		pos      position
	}
	deliveredAt := map[consumerPos][]time.Duration{} // in delivery order
	for _, d := range h.Deliveries {
		k := consumerPos{d.Consumer, position{d.Partition, d.Offset}}
		deliveredAt[k] = append(deliveredAt[k], d.At)
	}
	commitsOf := map[int32][]QueueCommit{}
	for _, c := range commits {
		commitsOf[c.Partition] = append(commitsOf[c.Partition], c)
	}

	for _, hd := range handles {
		pos := position{hd.Partition, hd.Offset}
		ex := Example{Value: hd.Value, Partition: hd.Partition, Offset: hd.Offset, Consumer: hd.Consumer, At: hd.At}
		if v, ok := logAt[pos]; !ok {
			ex.Note = "the log read back has no record there"
			fs.add(InconsistentOffsets, ex)
		} else if v != hd.Value {
			ex.Note = "the log read back holds " + v.String() + " there"
			fs.add(InconsistentOffsets, ex)
		}
		if !handledValue[hd.Value] {
			handledValue[hd.Value] = true
			if !acked[hd.Value] {
				rep.Indeterminate++
			}
		}
		if _, again := firstDone[pos]; again {
			rep.Rehandled++
			got, what := hd.Start, "started"
			if d, ok := lastDelivery(deliveredAt[consumerPos{hd.Consumer, pos}], hd.Start); ok {
				got, what = d, "was delivered"
			}
			if c, ok := lastCommitBefore(commitsOf[hd.Partition], got); ok && c.covers(hd.Offset) {
				ex.Note = fmt.Sprintf("%s at %v after a commit observed at %v covered it (offset %d)",
					what, got.Round(time.Millisecond), c.At.Round(time.Millisecond), c.Offset)
				fs.add(UnexplainedRehandle, ex)
			}
			continue
		}
		firstDone[pos] = hd.At
		kp := keyPart{hd.Value.Key, hd.Partition}
		if m, ok := maxFirst[kp]; ok && hd.Offset < m && keepsKeyOrder {
			ex.Note = fmt.Sprintf("handled after offset %d of its key", m)
			fs.add(ReorderedWithinKey, ex)
		}
		if m, ok := maxFirst[kp]; !ok || hd.Offset > m {
			maxFirst[kp] = hd.Offset
		}
	}
	rep.Distinct = len(firstDone)

	// Unseen: acknowledged values no handle carries, in key and sequence order.
	var unseen []Ack
	for _, a := range h.Acked {
		if !handledValue[a.Value] {
			unseen = append(unseen, a)
			handledValue[a.Value] = true // count a value acknowledged twice once
		}
	}
	slices.SortFunc(unseen, func(a, b Ack) int {
		return cmp.Or(cmp.Compare(a.Value.Key, b.Value.Key), cmp.Compare(a.Value.Seq, b.Value.Seq))
	})
	for _, a := range unseen {
		fs.add(Unseen, Example{Value: a.Value, Partition: a.Partition, Offset: a.Offset, Note: "acknowledged, never handled"})
	}

	// At-least-once: every record a commit covers was handled before the
	// commit was observed. Each record counts once, at its first such commit;
	// the examples show records never handled first.
	flagged := map[position]bool{}
	var late []Example
	for _, c := range commits {
		for _, r := range byPartition[c.Partition] {
			if c.Done == nil && r.Offset >= c.Offset {
				break
			}
			pos := position{r.Partition, r.Offset}
			if !c.covers(r.Offset) || flagged[pos] {
				continue
			}
			at, handled := firstDone[pos]
			if handled && at <= c.At {
				continue
			}
			flagged[pos] = true
			ex := Example{Value: r.Value, Partition: r.Partition, Offset: r.Offset, At: c.At,
				Note: fmt.Sprintf("committed offset %d observed at %v; never handled", c.Offset, c.At.Round(time.Millisecond))}
			if handled {
				ex.Note = fmt.Sprintf("committed offset %d observed at %v; first handled at %v", c.Offset,
					c.At.Round(time.Millisecond), at.Round(time.Millisecond))
				late = append(late, ex)
				continue
			}
			fs.add(AtLeastOnceViolation, ex)
		}
	}
	for _, ex := range late {
		fs.add(AtLeastOnceViolation, ex)
	}

	// nonmonotonic-poll and poll-skip: each member's deliveries of each
	// partition within one generation.
	steps := make([]pollStep, len(h.Deliveries))
	for i, d := range h.Deliveries {
		steps[i] = pollStep{reader: d.Consumer, epoch: int64(d.Session)<<32 | int64(uint32(d.Generation)), at: d.At,
			rec: Record{Partition: d.Partition, Offset: d.Offset, Value: d.Value}}
	}
	pollOrder(steps, "consumer", func(pos position) (Value, bool) {
		v, ok := logAt[pos]
		return v, ok
	}, func(k AnomalyKind, v Value, pos position, s pollStep, note string) {
		fs.add(k, Example{Value: v, Partition: pos.partition, Offset: pos.offset, Consumer: s.reader, At: s.at,
			Note: fmt.Sprintf("%s in generation %d (session %d)", note, uint32(s.epoch), s.epoch>>32)})
	})

	for _, k := range QueueKinds() {
		if f := fs.found[k]; f != nil {
			rep.Findings = append(rep.Findings, *f)
		}
	}
	return rep
}

// lastDelivery returns the last of times (a member's deliveries of one
// record, in order) not after t.
func lastDelivery(times []time.Duration, t time.Duration) (time.Duration, bool) {
	for i := len(times) - 1; i >= 0; i-- {
		if times[i] <= t {
			return times[i], true
		}
	}
	return 0, false
}

// lastCommitBefore returns the last observation in cs (ordered by At)
// made before t.
func lastCommitBefore(cs []QueueCommit, t time.Duration) (QueueCommit, bool) {
	i, _ := slices.BinarySearchFunc(cs, t, func(c QueueCommit, t time.Duration) int {
		if c.At < t {
			return -1
		}
		return 1
	})
	if i == 0 {
		return QueueCommit{}, false
	}
	return cs[i-1], true
}
