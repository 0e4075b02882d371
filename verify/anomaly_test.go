package verify

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kafkaguard/kafkaguard/produce"
)

// cleanHistory is one reader's complete read of two partitions holding
// every acknowledged record once, in order.
func cleanHistory() History {
	h := History{Seed: 7}
	offs := map[int32]int64{}
	var poll Poll
	for i, v := range Workload(8, 2) {
		p := int32(v.Key)
		h.Sends = append(h.Sends, Send{Value: v, Acked: true, Partition: p, Offset: offs[p], At: time.Duration(i) * time.Millisecond})
		poll.Records = append(poll.Records, Record{Partition: p, Offset: offs[p], Value: v})
		offs[p]++
	}
	poll.At = time.Second
	h.Polls = []Poll{poll}
	return h
}

func TestAnalyzeFindsNothingInACleanHistory(t *testing.T) {
	t.Parallel()
	if got := Analyze(cleanHistory()); len(got) != 0 {
		t.Fatalf("Analyze = %+v, want no anomaly", got)
	}
}

// TestAnalyzeNamesEachAnomaly builds, for each anomaly, a history that contains it (and
// nothing else) from the clean one.
func TestAnalyzeNamesEachAnomaly(t *testing.T) {
	t.Parallel()
	recs := func(h *History) *[]Record { return &h.Polls[0].Records }
	tests := []struct {
		kind   AnomalyKind
		break_ func(h *History)
		want   Value // the first example's value
		count  int
	}{
		{LostWrite, func(h *History) { // k0:1 (0/1) acknowledged, the reader went on to 0/2 and 0/3
			*recs(h) = slices.DeleteFunc(*recs(h), func(r Record) bool { return r.Value == v(0, 1) })
		}, v(0, 1), 1},
		{Unseen, func(h *History) { // k1:3 (1/3), the last of its partition, never read
			*recs(h) = slices.DeleteFunc(*recs(h), func(r Record) bool { return r.Value == v(1, 3) })
		}, v(1, 3), 1},
		{Duplicate, func(h *History) { // k0:2 stored again at 0/4
			*recs(h) = append(*recs(h), Record{Partition: 0, Offset: 4, Value: v(0, 2)})
		}, v(0, 2), 1},
		{InconsistentOffsets, func(h *History) { // a second reader sees another value at 1/2
			h.Polls = append(h.Polls, Poll{Reader: 1, At: 2 * time.Second, Records: []Record{
				{Partition: 1, Offset: 1, Value: v(1, 1)}, {Partition: 1, Offset: 2, Value: v(5, 0)}}})
			h.Sends = append(h.Sends, Send{Value: v(5, 0), Acked: true, Partition: 1, Offset: 2})
		}, v(1, 2), 1},
		{NonmonotonicPoll, func(h *History) { // the reader's next poll goes back to 0/1
			h.Polls = append(h.Polls, Poll{At: 2 * time.Second, Records: []Record{{Partition: 0, Offset: 1, Value: v(0, 1)}}})
		}, v(0, 1), 1},
		{PollSkip, func(h *History) { // a second reader jumps from 0/0 to 0/3 over 0/1 and 0/2
			h.Polls = append(h.Polls, Poll{Reader: 1, At: 2 * time.Second, Records: []Record{
				{Partition: 0, Offset: 0, Value: v(0, 0)}, {Partition: 0, Offset: 3, Value: v(0, 3)}}})
		}, v(0, 1), 1},
		{ReorderedWithinKey, func(h *History) { // k1:1 and k1:2 stored the other way round
			for i, r := range *recs(h) {
				switch r.Value {
				case v(1, 1):
					(*recs(h))[i].Value = v(1, 2)
				case v(1, 2):
					(*recs(h))[i].Value = v(1, 1)
				}
			}
		}, v(1, 1), 1},
		{Indeterminate, func(h *History) { // k0:4 was read although its send failed
			h.Sends = append(h.Sends, Send{Value: v(0, 4), Partition: -1, Offset: -1})
			*recs(h) = append(*recs(h), Record{Partition: 0, Offset: 4, Value: v(0, 4)})
		}, v(0, 4), 1},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			h := cleanHistory()
			h.Polls[0].Records = slices.Clone(h.Polls[0].Records)
			h.Faults = []FaultEvent{{At: 0, Op: OpKill, Broker: 2}}
			tt.break_(&h)
			got := Analyze(h)
			a, ok := got.Get(tt.kind)
			if !ok || a.Count != tt.count {
				t.Fatalf("Analyze = %+v, want %d %s", got, tt.count, tt.kind)
			}
			if len(got) != 1 {
				t.Errorf("Analyze = %+v, want only %s", got, tt.kind)
			}
			e := a.Examples[0]
			if e.Value != tt.want || e.Seed != 7 || !slices.Equal(e.Faults, []string{"kill 2"}) {
				t.Errorf("example %+v, want value %s, seed 7, faults [kill 2]", e, tt.want)
			}
		})
	}
}

func TestAnalyzeKeepsAtMostFiveExamples(t *testing.T) {
	t.Parallel()
	h := cleanHistory()
	h.Polls = nil // nothing read: every acknowledged record is unseen
	a, _ := Analyze(h).Get(Unseen)
	if a.Count != 8 || len(a.Examples) != MaxExamples {
		t.Fatalf("unseen %d with %d examples, want 8 with %d", a.Count, len(a.Examples), MaxExamples)
	}
	if !strings.Contains(a.Examples[0].String(), "seed 7") {
		t.Errorf("example %q does not name its seed", a.Examples[0])
	}
}

func TestResultErrFailsEveryPresetOnABrokerAnomaly(t *testing.T) {
	t.Parallel()
	for _, p := range []produce.Preset{produce.NoLoss, produce.LeaderAck, produce.AtMostOnce} {
		r := Result{Preset: p, Fault: FaultRandom, Anomalies: Anomalies{{Kind: InconsistentOffsets, Count: 1,
			Examples: []Example{{Value: v(0, 1)}}}}}
		if err := r.Err(); !errors.Is(err, ErrAnomaly) || !strings.Contains(r.Verdict(), "inconsistent-offsets") {
			t.Errorf("%s: Err() = %v, verdict %q; want ErrAnomaly", p, err, r.Verdict())
		}
		r.Anomalies = Anomalies{{Kind: Indeterminate, Count: 3}}
		if err := r.Err(); err != nil {
			t.Errorf("%s: indeterminate records fail the run: %v", p, err)
		}
	}
}

// TestAnomalyJSONReadsEitherName: an anomaly is written with its kind under "kind" and
// "anomaly" (the queue workload's first name for it), and read back from either.
func TestAnomalyJSONReadsEitherName(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(Anomaly{Kind: PollSkip, Count: 2})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"kind":"poll-skip","anomaly":"poll-skip","count":2}`; string(b) != want {
		t.Errorf("JSON %s, want %s", b, want)
	}
	for _, in := range []string{string(b), `{"anomaly":"unseen","count":3}`, `{"kind":"unseen","count":3}`} {
		var a Anomaly
		if err := json.Unmarshal([]byte(in), &a); err != nil || a.Kind == "" || a.Count == 0 {
			t.Errorf("%s read as %+v, %v", in, a, err)
		}
	}
}
