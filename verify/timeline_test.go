package verify

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/kafkatest"
	"github.com/kafkaguard/kafkaguard/produce"
)

func TestLatencyPercentilesAreWithinSevenPercent(t *testing.T) {
	t.Parallel()
	for _, d := range []time.Duration{2 * time.Microsecond, 1500 * time.Microsecond, 3 * time.Millisecond,
		17 * time.Millisecond, 250 * time.Millisecond, 4 * time.Second, 90 * time.Second} {
		var h latencies
		h[latBin(d)]++
		got := h.quantile(0.5, 1)
		if e := math.Abs(float64(got-d)) / float64(d); e > 0.07 {
			t.Errorf("%v is read back as %v (%.1f%% off)", d, got, 100*e)
		}
	}
	var h latencies
	for i := 1; i <= 100; i++ { // 1 ms .. 100 ms
		h[latBin(time.Duration(i)*time.Millisecond)]++
	}
	p50, p99 := h.quantile(0.5, 100), h.quantile(0.99, 100)
	if p50 < 47*time.Millisecond || p50 > 54*time.Millisecond || p99 < 93*time.Millisecond || p99 > 106*time.Millisecond {
		t.Errorf("p50 %v, p99 %v of 1..100 ms; want about 50 ms and 99 ms", p50, p99)
	}
	if latBin(0) != 0 || latBin(time.Hour) != latBins-1 {
		t.Errorf("out-of-range latencies fall in bins %d and %d", latBin(0), latBin(time.Hour))
	}
}

func TestTimelineWindowsPairEachFaultWithTheStepThatEndsIt(t *testing.T) {
	t.Parallel()
	s := time.Second
	tl := Timeline{Duration: 10 * s, Faults: []TimelineFault{
		{At: 1 * s, Op: OpKill, Broker: 1},
		{At: 2 * s, Op: OpPauseReplication, Broker: 2},
		{At: 2 * s, Op: OpPauseReplication, Broker: 3},
		{At: 3 * s, Op: OpResumeReplication, Broker: 2},
		{At: 4 * s, Op: OpRestart, Broker: 1},
		{At: 5 * s, Op: OpIsolate, Broker: 1},
		{At: 6 * s, Op: "bounce", Broker: 2},  // a step nothing pairs: a window of its own
		{At: 7 * s, Op: OpRestart, Broker: 2}, // ends nothing: a step of its own
		{At: 7 * s, Op: OpPause, Broker: 3},
		{At: 8 * s, Op: OpLatency, Broker: 1, Detail: "100ms±50ms"},
		{At: 8 * s, Op: OpCutLink, Broker: 2, Detail: "to 3"},
		{At: 9 * s, Op: OpResume, Broker: 3},
		{At: 9 * s, Op: OpLatency, Broker: 1, Detail: latencyOff},
		{At: 9 * s, Op: OpCutController, Broker: 1},
	}}
	want := []TimelineWindow{
		{OpKill, 1, 1 * s, 4 * s},
		{OpPauseReplication, 2, 2 * s, 3 * s},
		{OpPauseReplication, 3, 2 * s, 10 * s}, // never resumed: to the end of the run
		{OpIsolate, 1, 5 * s, 10 * s},
		{"bounce", 2, 6 * s, 6 * s},
		{OpRestart, 2, 7 * s, 7 * s},
		{OpPause, 3, 7 * s, 9 * s},
		{OpLatency, 1, 8 * s, 9 * s},
		{OpCutLink, 2, 8 * s, 10 * s},
		{OpCutController, 1, 9 * s, 10 * s},
	}
	if got := tl.Windows(); !slices.Equal(got, want) {
		t.Errorf("Windows() =\n%v\nwant\n%v", got, want)
	}
}

func TestRecorderBucketsOutcomesAndFaults(t *testing.T) {
	t.Parallel()
	start := time.Now().Add(-time.Second)
	r := newRecorder(start, 4, 2)
	for i := range 4 {
		r.sent(i)
	}
	r.fault(OpKill, 3, "")
	r.outcome(Ack{Value: Value{Key: 0, Seq: 0}, Partition: 0, Offset: 7}, nil)
	r.outcome(Ack{Value: Value{Key: 1, Seq: 0}, Partition: 1, Offset: 2}, nil)
	r.outcome(Ack{Value: Value{Key: 0, Seq: 1}, Partition: -1, Offset: -1}, errors.New("timeout"))
	r.readProgress(10)
	r.readProgress(0)
	tl := r.timeline()
	var sent, acked, failed int
	for _, s := range tl.Samples {
		sent, acked, failed = sent+s.Sent, acked+s.Acked, failed+s.Failed
		if s.Acked > 0 && (s.LatencyP50 <= 0 || s.LatencyP99 < s.LatencyP50) {
			t.Errorf("sample %+v: acks without a latency", s)
		}
	}
	if sent != 4 || acked != 2 || failed != 1 {
		t.Errorf("sent %d, acked %d, failed %d; want 4, 2, 1", sent, acked, failed)
	}
	if len(tl.Samples) < 10 || tl.Interval != TimelineInterval {
		t.Errorf("%d samples of %v for a run 1 s old", len(tl.Samples), tl.Interval)
	}
	if len(tl.Faults) != 1 || tl.Faults[0].Op != OpKill || tl.Faults[0].Broker != 3 || tl.Faults[0].At < time.Second {
		t.Errorf("faults %+v", tl.Faults)
	}
	if len(tl.ReadLag) != 2 || tl.ReadLag[0].Records != 10 || tl.ReadLag[1].Records != 0 {
		t.Errorf("read lag %+v; want 10 then 0", tl.ReadLag)
	}
	if r.maxAcked[0] != 7 || r.maxAcked[1] != 2 || len(r.maxAcked) != 2 {
		t.Errorf("highest acked offsets %v", r.maxAcked)
	}
	var nilRec *recorder // a tally without a recorder
	nilRec.sent(0)
	nilRec.outcome(Ack{}, nil)
	nilRec.fault(OpKill, 1, "")
	nilRec.readProgress(1)
	if nilRec.timeline() != nil {
		t.Error("a nil recorder has a timeline")
	}
}

// checkTimeline checks the Timeline of a run of TestRunUnderFaults: the
// producer's outcomes add up to the Result's, the fault steps are there in
// time, the read back ends with nothing left, and the high watermark lag
// shows acks=1 acknowledging records no consumer can read yet while
// acks=all never does.
func checkTimeline(t *testing.T, res Result) {
	t.Helper()
	tl := res.Timeline
	if tl == nil {
		t.Fatal("no Timeline")
	}
	var sent, acked, failed int
	for _, s := range tl.Samples {
		sent, acked, failed = sent+s.Sent, acked+s.Acked, failed+s.Failed
		if s.Acked > 0 && (s.LatencyP50 <= 0 || s.LatencyP99 < s.LatencyP50) {
			t.Errorf("sample %+v: acks without a latency", s)
		}
	}
	if sent != res.Sent || acked != len(res.Acked) || failed != res.Failed {
		t.Errorf("timeline: sent %d, acked %d, failed %d; result: %d, %d, %d", sent, acked, failed, res.Sent, len(res.Acked), res.Failed)
	}
	ops := map[Op]bool{}
	for i, f := range tl.Faults {
		ops[f.Op] = true
		if f.At <= 0 || f.At > tl.Duration || i > 0 && f.At < tl.Faults[i-1].At {
			t.Errorf("fault step %d at %v (run of %v, previous %v)", i, f.At, tl.Duration, tl.Faults[max(i-1, 0)].At)
		}
	}
	for _, op := range res.Fault.Ops() {
		if !ops[op] {
			t.Errorf("no %s step in %v", op, tl.Faults)
		}
	}
	for _, w := range tl.Windows() {
		if w.End <= w.Start {
			t.Errorf("fault window %+v has no length", w)
		}
	}
	if n := len(tl.ReadLag); n < 2 || tl.ReadLag[0].Records <= 0 || tl.ReadLag[n-1].Records != 0 {
		t.Errorf("read lag %v: want it to start above 0 and end at 0", tl.ReadLag)
	}
	if len(tl.HighWatermarkLag) == 0 {
		t.Fatal("no high watermark lag sample")
	}
	most := slices.MaxFunc(tl.HighWatermarkLag, func(a, b TimelineLag) int { return int(a.Records - b.Records) })
	switch {
	case res.Preset == produce.LeaderAck && res.Fault == FaultPauseFollowersKillLeader && most.Records == 0:
		t.Errorf("acks=1 with the followers paused never acknowledged above the high watermark: %v", tl.HighWatermarkLag)
	case res.Preset == produce.NoLoss && res.Fault == FaultPauseFollowersKillLeader && most.Records != 0:
		t.Errorf("acks=all acknowledged %d records above the high watermark at %v", most.Records, most.At)
	}
}

// TestHighWatermarkWatchTakesALastSampleWhenStopped: a run stopped before any 100 ms sample
// came (or whose samples all fell while a leader was down) still has its lag series: stop
// takes one more sample.
func TestHighWatermarkWatchTakesALastSampleWhenStopped(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.CreateTopic(ctx, "lag", 1, 1, nil); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.DefaultProduceTopic("lag"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	r := newRecorder(time.Now(), 1, 1)
	r.outcome(Ack{Value: Value{Key: 0, Seq: 0}, Partition: 0, Offset: 0}, nil)
	stop := r.watchHighWatermarks(ctx, kadm.NewClient(cl), "lag")
	stop() // before the first tick
	stop() // a second stop takes no second sample
	if lag := r.timeline().HighWatermarkLag; len(lag) != 1 || lag[0].Records != 1 {
		t.Fatalf("lag samples %+v, want one: the acknowledged offset 0 above an empty partition's high watermark", lag)
	}
}
