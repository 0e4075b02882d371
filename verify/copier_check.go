package verify

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// The anomalies of transactional reads, which [CheckCopier] names besides
// [Analyze]'s.
const (
	// AbortedRead (G1a, copier workload): a read_committed reader returned a
	// record whose transaction aborted (the log holds an abort marker of
	// its producer after it).
	AbortedRead AnomalyKind = "aborted-read"
	// IntermediateRead (G1b, copier workload): a read_committed reader
	// returned some but not all records of a committed transaction from one
	// partition (it read past the transaction's last record without the
	// rest), or a record of a transaction that never ended.
	IntermediateRead AnomalyKind = "intermediate-read"
)

// CopierKinds returns every kind [CheckCopier] reports, in report order.
func CopierKinds() []AnomalyKind {
	return []AnomalyKind{LostWrite, Unseen, Duplicate, InconsistentOffsets, NonmonotonicPoll, PollSkip, ReorderedWithinKey,
		AbortedRead, IntermediateRead, Indeterminate}
}

// Marker is what a control record of a transactional producer says.
type Marker string

// The markers; a data record has none.
const (
	MarkerNone   Marker = ""
	MarkerCommit Marker = "commit"
	MarkerAbort  Marker = "abort"
)

// LogEntry is one record of a topic's log as a read_uncommitted reader
// that keeps control records sees it: a data record (its value) or a
// transaction marker, with the producer that wrote it.
type LogEntry struct {
	Partition     int32  `json:"partition"`
	Offset        int64  `json:"offset"`
	Value         Value  `json:"value"`         // zero for a marker
	ProducerID    int64  `json:"producer_id"`   // -1 if none
	Transactional bool   `json:"transactional"` // written in a transaction
	Marker        Marker `json:"marker,omitempty"`
}

// CopierHistory is what a copier run's clients did: the input's sends,
// the polls of the read_committed readers of the output, the output's log
// with its transaction markers, the copiers' crashes and the faults.
type CopierHistory struct {
	Seed  int64
	Sends []Send // the input's sends; Partition is the input partition
	// Polls are the read_committed readers' polls of the output (Reader 0
	// reads while the copiers run, and on to the end).
	Polls   []Poll
	Log     []LogEntry // the output read_uncommitted, markers kept
	Crashes []QueueCrash
	Faults  []FaultEvent
}

// CopierReport is [CheckCopier]'s judgement of a copier run: the output
// against the input's acknowledged records, and the anomalies found.
type CopierReport struct {
	Acked      int `json:"acked"`      // distinct input values acknowledged
	Copied     int `json:"copied"`     // distinct values read from the output
	Read       int `json:"read"`       // output records read, copies included, by the last read
	Lost       int `json:"lost"`       // acknowledged, never read from the output
	Duplicated int `json:"duplicated"` // extra copies in the output
	Reordered  int `json:"reordered"`  // copied against their key's order
	// AbortedReads and IntermediateReads count the read_committed reads of
	// an aborted or unfinished transaction.
	AbortedReads      int       `json:"aborted_reads"`
	IntermediateReads int       `json:"intermediate_reads"`
	Crashes           int       `json:"crashes"` // copier crashes
	Findings          Anomalies `json:"anomalies,omitempty"`
}

// Anomalies returns how many anomalies were found (indeterminate records
// left out).
func (r CopierReport) Anomalies() int { return r.Findings.Total() }

// Err returns nil if the copy is exact: every acknowledged input record in
// the output once, each key in order, no read of an aborted or unfinished
// transaction; else an error wrapping ErrAnomaly that names them.
func (r CopierReport) Err() error {
	if r.Anomalies() == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrAnomaly, r.Findings)
}

// CheckCopier judges a copier run: [Analyze] of the input's sends against
// the output's read_committed polls (lost-write, unseen, duplicate,
// reordered-within-key, ...), and the transactional reads: every record a
// read_committed reader returned is looked up in the output's log, where
// the next marker of its producer in its partition ends its transaction;
// a record whose transaction aborted is an aborted-read, one whose
// transaction has no marker, or whose committed transaction the reader
// read past without reading it whole, an intermediate-read.
func CheckCopier(h CopierHistory) CopierReport {
	found := Analyze(History{Seed: h.Seed, Sends: h.Sends, Polls: h.Polls, Faults: h.Faults})
	found = append(found, txnReads(h)...)
	slices.SortStableFunc(found, func(a, b Anomaly) int {
		return cmp.Compare(slices.Index(CopierKinds(), a.Kind), slices.Index(CopierKinds(), b.Kind))
	})
	r := CopierReport{Crashes: len(h.Crashes), Findings: found}
	acked := map[Value]bool{}
	for _, s := range h.Sends {
		if s.Acked {
			acked[s.Value] = true
		}
	}
	r.Acked = len(acked)
	last := -1
	for _, p := range h.Polls {
		last = max(last, p.Reader)
	}
	copied := map[Value]bool{}
	for _, p := range h.Polls {
		for _, rec := range p.Records {
			copied[rec.Value] = true
			if p.Reader == last {
				r.Read++
			}
		}
	}
	r.Copied = len(copied)
	r.Lost = found.Count(LostWrite) + found.Count(Unseen)
	r.Duplicated = found.Count(Duplicate)
	r.Reordered = found.Count(ReorderedWithinKey)
	r.AbortedReads = found.Count(AbortedRead)
	r.IntermediateReads = found.Count(IntermediateRead)
	return r
}

// txn is one transaction of the output's log in one partition.
type txn struct {
	partition int32
	producer  int64
	marker    Marker // MarkerNone: never ended
	at        int64  // the marker's offset
	offsets   []int64
}

// txnReads names aborted-read and intermediate-read (see CheckCopier).
func txnReads(h CopierHistory) Anomalies {
	log := slices.Clone(h.Log)
	slices.SortFunc(log, func(a, b LogEntry) int {
		return comparePositions(position{a.Partition, a.Offset}, position{b.Partition, b.Offset})
	})
	type partProducer struct {
		partition int32
		producer  int64
	}
	open := map[partProducer]*txn{}
	of := map[position]*txn{}
	for _, e := range log {
		pp := partProducer{e.Partition, e.ProducerID}
		switch {
		case e.Marker != MarkerNone:
			if t := open[pp]; t != nil {
				t.marker, t.at = e.Marker, e.Offset
				delete(open, pp)
			}
		case e.Transactional:
			t := open[pp]
			if t == nil {
				t = &txn{partition: e.Partition, producer: e.ProducerID}
				open[pp] = t
			}
			t.offsets = append(t.offsets, e.Offset)
			of[position{e.Partition, e.Offset}] = t
		}
	}
	found := map[AnomalyKind][]Example{}
	ex := func(r Record, at time.Duration, reader int, note string) Example {
		return Example{Value: r.Value, Partition: r.Partition, Offset: r.Offset, Seed: h.Seed, At: at,
			Faults: ActiveFaults(h.Faults, at), Consumer: "reader " + strconv.Itoa(reader), Note: note}
	}
	type readerTxn struct {
		reader int
		t      *txn
	}
	type readerPart struct {
		reader    int
		partition int32
	}
	readOf := map[readerTxn]map[int64]bool{}
	var readOrder []readerTxn
	maxRead := map[readerPart]int64{}
	firstAt := map[readerTxn]time.Duration{}
	for _, p := range h.Polls {
		for _, r := range p.Records {
			rp := readerPart{p.Reader, r.Partition}
			if m, ok := maxRead[rp]; !ok || r.Offset > m {
				maxRead[rp] = r.Offset
			}
			t := of[position{r.Partition, r.Offset}]
			if t == nil {
				continue // not transactional, or past the log read
			}
			switch t.marker {
			case MarkerAbort:
				found[AbortedRead] = append(found[AbortedRead], ex(r, p.At, p.Reader,
					fmt.Sprintf("producer %d aborted it at offset %d", t.producer, t.at)))
			case MarkerNone:
				found[IntermediateRead] = append(found[IntermediateRead], ex(r, p.At, p.Reader,
					fmt.Sprintf("the transaction of producer %d never ended", t.producer)))
			}
			rt := readerTxn{p.Reader, t}
			if readOf[rt] == nil {
				readOf[rt] = map[int64]bool{}
				readOrder = append(readOrder, rt)
				firstAt[rt] = p.At
			}
			readOf[rt][r.Offset] = true
		}
	}
	valueAt := map[position]Value{}
	for _, e := range log {
		valueAt[position{e.Partition, e.Offset}] = e.Value
	}
	for _, rt := range readOrder {
		t := rt.t
		if t.marker != MarkerCommit || len(readOf[rt]) == len(t.offsets) {
			continue
		}
		part := t.partition
		if maxRead[readerPart{rt.reader, part}] <= t.offsets[len(t.offsets)-1] {
			continue // the reader has not read past it yet
		}
		for _, o := range t.offsets {
			if !readOf[rt][o] {
				r := Record{Partition: part, Offset: o, Value: valueAt[position{part, o}]}
				found[IntermediateRead] = append(found[IntermediateRead], ex(r, firstAt[rt], rt.reader,
					fmt.Sprintf("read %d of the %d records of a committed transaction of producer %d, not this one", len(readOf[rt]), len(t.offsets), t.producer)))
				break
			}
		}
	}
	var out Anomalies
	for _, k := range []AnomalyKind{AbortedRead, IntermediateRead} {
		exs := found[k]
		if len(exs) == 0 {
			continue
		}
		slices.SortFunc(exs, func(a, b Example) int {
			return comparePositions(position{a.Partition, a.Offset}, position{b.Partition, b.Offset})
		})
		out = append(out, Anomaly{Kind: k, Count: len(exs), Examples: slices.Clone(exs[:min(len(exs), MaxExamples)])})
	}
	return out
}
