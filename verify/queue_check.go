package verify

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kafkaguard/kafkaguard/consume"
)

// QueueAnomaly names what [CheckQueue] finds in a queue history. The names
// are those of the checker's table (shared/ANOMALIES.md), where one exists.
type QueueAnomaly string

// The anomalies of the queue workload.
const (
	// AnomalyUnseen: an acknowledged record no consumer handled by the end
	// of the run.
	AnomalyUnseen QueueAnomaly = "unseen"
	// AnomalyAtLeastOnce: a committed offset of the group passed a record
	// of the log (or the commit's metadata named it done) that no consumer
	// had handled when the commit was observed: the commit got ahead of
	// processing (the at-least-once violation).
	AnomalyAtLeastOnce QueueAnomaly = "at-least-once-violation"
	// AnomalyReorderedWithinKey: under an order mode that keeps a key's
	// order (KeyOrder, PartitionOrder), a record was handled for the first
	// time after a later record of its key in its partition had been
	// handled.
	AnomalyReorderedWithinKey QueueAnomaly = "reordered-within-key"
	// AnomalyInconsistentOffsets: a handler saw, at a partition and offset,
	// a value the log read back after the run does not hold there — a
	// record read above the high watermark and truncated later, or two
	// values at one offset.
	AnomalyInconsistentOffsets QueueAnomaly = "inconsistent-offsets"
	// AnomalyUnexplainedRehandle: a record ran again although, when it
	// started again, the group's last observed commit already covered it
	// (below the committed offset, or named done in its metadata). Re-runs
	// are the at-least-once cost only for records in flight, handled but
	// not committed, when their consumer crashed or lost the partition.
	AnomalyUnexplainedRehandle QueueAnomaly = "unexplained-rehandle"
)

// QueueAnomalies returns the anomalies [CheckQueue] looks for, in the order
// it reports them.
func QueueAnomalies() []QueueAnomaly {
	return []QueueAnomaly{AnomalyUnseen, AnomalyAtLeastOnce, AnomalyReorderedWithinKey,
		AnomalyInconsistentOffsets, AnomalyUnexplainedRehandle}
}

// ErrQueueAnomaly is matched by [QueueReport.Err] when a queue history shows
// an anomaly.
var ErrQueueAnomaly = errors.New("verify: queue anomaly")

// QueueExamples is how many examples a [QueueReport] keeps per anomaly.
const QueueExamples = 5

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
	// Crashes are the consumer crashes (not judged; they explain re-runs).
	Crashes []QueueCrash
}

// QueueExample is one instance of an anomaly.
type QueueExample struct {
	Value     Value         `json:"value"`
	Partition int32         `json:"partition"`
	Offset    int64         `json:"offset"`
	Consumer  string        `json:"consumer,omitempty"`
	At        time.Duration `json:"at_ns"`
	Note      string        `json:"note,omitempty"`
}

// String formats the example on one line.
func (e QueueExample) String() string {
	s := fmt.Sprintf("%v at %d/%d", e.Value, e.Partition, e.Offset)
	if e.Consumer != "" {
		s += " by " + e.Consumer
	}
	if e.At != 0 {
		s += fmt.Sprintf(" (%v)", e.At.Round(time.Millisecond))
	}
	if e.Note != "" {
		s += ": " + e.Note
	}
	return s
}

// QueueFinding is one anomaly found: how many records show it, with up to
// QueueExamples of them.
type QueueFinding struct {
	Anomaly  QueueAnomaly   `json:"anomaly"`
	Count    int            `json:"count"`
	Examples []QueueExample `json:"examples"`
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
	// Findings lists the anomalies found, in the order of QueueAnomalies.
	Findings []QueueFinding `json:"anomalies,omitempty"`
}

// Count returns how many records show anomaly a.
func (r QueueReport) Count(a QueueAnomaly) int {
	for _, f := range r.Findings {
		if f.Anomaly == a {
			return f.Count
		}
	}
	return 0
}

// Anomalies returns the total count over every anomaly.
func (r QueueReport) Anomalies() int {
	n := 0
	for _, f := range r.Findings {
		n += f.Count
	}
	return n
}

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
		parts[i] = fmt.Sprintf("%s: %d, e.g. %s", f.Anomaly, f.Count, strings.Join(ex, "; "))
	}
	return fmt.Errorf("%w: %s", ErrQueueAnomaly, strings.Join(parts, "; "))
}

// findings collects anomalies with their examples.
type findings map[QueueAnomaly]*QueueFinding

func (fs findings) add(a QueueAnomaly, e QueueExample) {
	f := fs[a]
	if f == nil {
		f = &QueueFinding{Anomaly: a}
		fs[a] = f
	}
	f.Count++
	if len(f.Examples) < QueueExamples {
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
//   - unexplained-rehandle: a handle of a record handled before that
//     started after an observation of a commit covering the record, with no
//     later observation before it that did not (a commit cannot cover a
//     record its consumer had not finished, so the run's consumers had been
//     told the record was done).
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

	fs := findings{}
	rep := QueueReport{Acked: len(acked), Handled: len(handles), Crashes: len(h.Crashes)}
	firstDone := map[position]time.Duration{} // when the first handle of a position finished
	handledValue := map[Value]bool{}
	type keyPart struct {
		key       int
		partition int32
	}
	maxFirst := map[keyPart]int64{} // highest offset handled so far, per key and partition
	keepsKeyOrder := h.Order == consume.KeyOrder || h.Order == consume.PartitionOrder
	commitsOf := map[int32][]QueueCommit{}
	for _, c := range commits {
		commitsOf[c.Partition] = append(commitsOf[c.Partition], c)
	}

	for _, hd := range handles {
		pos := position{hd.Partition, hd.Offset}
		ex := QueueExample{Value: hd.Value, Partition: hd.Partition, Offset: hd.Offset, Consumer: hd.Consumer, At: hd.At}
		if v, ok := logAt[pos]; !ok {
			ex.Note = "the log read back has no record there"
			fs.add(AnomalyInconsistentOffsets, ex)
		} else if v != hd.Value {
			ex.Note = "the log read back holds " + v.String() + " there"
			fs.add(AnomalyInconsistentOffsets, ex)
		}
		if !handledValue[hd.Value] {
			handledValue[hd.Value] = true
			if !acked[hd.Value] {
				rep.Indeterminate++
			}
		}
		if _, again := firstDone[pos]; again {
			rep.Rehandled++
			if c, ok := lastCommitBefore(commitsOf[hd.Partition], hd.Start); ok && c.covers(hd.Offset) {
				ex.Note = fmt.Sprintf("started at %v after a commit observed at %v covered it (offset %d)",
					hd.Start.Round(time.Millisecond), c.At.Round(time.Millisecond), c.Offset)
				fs.add(AnomalyUnexplainedRehandle, ex)
			}
			continue
		}
		firstDone[pos] = hd.At
		kp := keyPart{hd.Value.Key, hd.Partition}
		if m, ok := maxFirst[kp]; ok && hd.Offset < m && keepsKeyOrder {
			ex.Note = fmt.Sprintf("handled after offset %d of its key", m)
			fs.add(AnomalyReorderedWithinKey, ex)
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
		fs.add(AnomalyUnseen, QueueExample{Value: a.Value, Partition: a.Partition, Offset: a.Offset, Note: "acknowledged, never handled"})
	}

	// At-least-once: every record a commit covers was handled before the
	// commit was observed. Each record counts once, at its first such commit;
	// the examples show records never handled first.
	flagged := map[position]bool{}
	var late []QueueExample
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
			ex := QueueExample{Value: r.Value, Partition: r.Partition, Offset: r.Offset, At: c.At,
				Note: fmt.Sprintf("committed offset %d observed at %v; never handled", c.Offset, c.At.Round(time.Millisecond))}
			if handled {
				ex.Note = fmt.Sprintf("committed offset %d observed at %v; first handled at %v", c.Offset,
					c.At.Round(time.Millisecond), at.Round(time.Millisecond))
				late = append(late, ex)
				continue
			}
			fs.add(AnomalyAtLeastOnce, ex)
		}
	}
	for _, ex := range late {
		fs.add(AnomalyAtLeastOnce, ex)
	}

	for _, a := range QueueAnomalies() {
		if f := fs[a]; f != nil {
			rep.Findings = append(rep.Findings, *f)
		}
	}
	return rep
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
