package verify

import (
	"context"
	"math/bits"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// TimelineInterval is the width of a [TimelineSample] and how often [Run]
// samples the high watermark lag.
const TimelineInterval = 100 * time.Millisecond

// Timeline is what a run did over time, for a report (package
// verify/report draws it): the producer's outcomes per interval, the fault
// steps, and lag. Times are offsets from the start of the run.
type Timeline struct {
	Interval time.Duration `json:"interval_ns"`
	Duration time.Duration `json:"duration_ns"` // Duration is the run's length.
	// Samples holds one entry per Interval, from the start of the run to
	// the last record's outcome.
	Samples []TimelineSample `json:"samples"`
	// Faults are the fault steps, in order: each operation of the
	// [FaultInjector] the schedule began, with the broker it acted on.
	Faults []TimelineFault `json:"faults"`
	// HighWatermarkLag is sampled every Interval while records are produced
	// and awaited: over the topic's partitions, the highest acknowledged
	// offset + 1 minus the high watermark, when above it. It counts
	// records a producer was told are written that no consumer could read
	// yet: under acks=all it stays near zero, under acks=1 it shows the
	// leader acknowledging alone. Unknown (no point) while a partition's
	// high watermark cannot be listed, and under acks=0, which tells no
	// offsets.
	HighWatermarkLag []TimelineLag `json:"high_watermark_lag"`
	// ReadLag is sampled while the run reads the topic back: records
	// between the reader's position and the end offsets, over the
	// partitions.
	ReadLag []TimelineLag `json:"read_lag"`
}

// TimelineSample is what the producer did in the interval starting At:
// records handed to it, acknowledged, failed, and the latency of the
// acknowledged ones, from the moment the record was handed to the producer
// (including any time the producer blocked on a full buffer) to its
// acknowledgement; zero when none was acknowledged. The percentiles are
// read from a histogram with 8 bins per doubling, so within 7%.
type TimelineSample struct {
	At         time.Duration `json:"at_ns"`
	Sent       int           `json:"sent"`
	Acked      int           `json:"acked"`
	Failed     int           `json:"failed"`
	LatencyP50 time.Duration `json:"latency_p50_ns"`
	LatencyP99 time.Duration `json:"latency_p99_ns"`
}

// TimelineFault is one fault step: the operation, the broker and when
// the schedule began it.
type TimelineFault struct {
	At     time.Duration `json:"at_ns"`
	Op     Op            `json:"op"`
	Broker int32         `json:"broker"`
	Detail string        `json:"detail,omitempty"` // e.g. the peer of a cut link, the added latency
}

// TimelineLag is one lag sample: a count of records at a time.
type TimelineLag struct {
	At      time.Duration `json:"at_ns"`
	Records int64         `json:"records"`
}

// TimelineWindow is a fault window on one broker: from the step that
// began a fault to the step that ended it (kill or power-loss to restart,
// isolate to heal, pause to resume, cut-link to heal-link, cut-controller
// to reconnect-controller, pause-replication to resume-replication, latency
// to latency 0s), or to the end of the run if none did. Any other step is a window of its own with
// End equal to Start.
type TimelineWindow struct {
	Op         Op
	Broker     int32
	Start, End time.Duration
}

// endsFaults returns the operations whose fault op ends.
func endsFaults(op Op) []Op {
	switch op {
	case OpRestart:
		return []Op{OpKill, OpPowerLoss}
	case OpHeal:
		return []Op{OpIsolate}
	case OpResume:
		return []Op{OpPause}
	case OpHealLink:
		return []Op{OpCutLink}
	case OpReconnectController:
		return []Op{OpCutController}
	case OpResumeReplication:
		return []Op{OpPauseReplication}
	}
	return nil
}

// latencyOff is the detail of the latency step that takes added latency away.
const latencyOff = "0s"

// beginsFault reports whether op begins a fault that another operation
// ends.
func beginsFault(op Op) bool {
	for _, end := range []Op{OpRestart, OpHeal, OpResume, OpHealLink, OpReconnectController, OpResumeReplication} {
		for _, b := range endsFaults(end) {
			if b == op {
				return true
			}
		}
	}
	return false
}

// Windows pairs the fault steps into windows, ordered by start.
func (tl *Timeline) Windows() []TimelineWindow {
	type key struct {
		op     Op
		broker int32
	}
	open := map[key]int{} // index in out
	var out []TimelineWindow
	for _, f := range tl.Faults {
		if isLatency(f.Op) && f.Detail == latencyOff {
			if i, ok := open[key{f.Op, f.Broker}]; ok {
				out[i].End = f.At
				delete(open, key{f.Op, f.Broker})
			}
			continue
		}
		if beginsFault(f.Op) || isLatency(f.Op) {
			if _, ok := open[key{f.Op, f.Broker}]; !ok {
				open[key{f.Op, f.Broker}] = len(out)
				out = append(out, TimelineWindow{Op: f.Op, Broker: f.Broker, Start: f.At, End: -1})
			}
			continue
		}
		ended := false
		for _, b := range endsFaults(f.Op) {
			if i, ok := open[key{b, f.Broker}]; ok {
				out[i].End = f.At
				delete(open, key{b, f.Broker})
				ended = true
			}
		}
		if !ended {
			out = append(out, TimelineWindow{Op: f.Op, Broker: f.Broker, Start: f.At, End: f.At})
		}
	}
	for i := range out {
		if out[i].End < 0 {
			out[i].End = max(tl.Duration, out[i].Start)
		}
	}
	return out
}

// Latency histogram: 8 bins per doubling from 1 µs (2^10 ns) to 2^38 ns
// (4.6 min); shorter and longer latencies fall in the first and last bin.
const (
	latMinExp  = 11 // bits.Len64 of the smallest latency binned apart
	latMaxExp  = 38
	latSubBits = 3
	latBins    = (latMaxExp - latMinExp + 1) << latSubBits
)

type latencies [latBins]uint32

func latBin(d time.Duration) int {
	ns := uint64(max(d, 1<<(latMinExp-1)))
	ns = min(ns, 1<<latMaxExp-1)
	e := bits.Len64(ns)
	return (e-latMinExp)<<latSubBits | int(ns>>(e-1-latSubBits))&(1<<latSubBits-1)
}

// latMid returns the middle of bin i.
func latMid(i int) time.Duration {
	e, m := i>>latSubBits+latMinExp, uint64(i&(1<<latSubBits-1))
	lo := (1<<latSubBits | m) << (e - 1 - latSubBits)
	return time.Duration(lo + 1<<(e-1-latSubBits)/2)
}

// quantile returns the q-quantile of the n latencies in h.
func (h *latencies) quantile(q float64, n int) time.Duration {
	rank := uint32(max(1, int(q*float64(n)+0.999999)))
	var seen uint32
	for i, c := range h {
		if seen += c; seen >= rank {
			return latMid(i)
		}
	}
	return 0
}

type timelineBucket struct {
	sent, acked, failed int
	lat                 latencies
}

// recorder gathers a run's [Timeline]. Its methods are safe for concurrent
// use and do nothing on a nil recorder.
type recorder struct {
	start time.Time
	keys  int

	mu       sync.Mutex
	sentAt   []time.Duration // by workload index (see Workload); 0: not sent
	buckets  []timelineBucket
	faults   []TimelineFault
	maxAcked map[int32]int64 // highest acknowledged offset per partition
	hwLag    []TimelineLag
	readLag  []TimelineLag
	lastRead time.Duration
}

func newRecorder(start time.Time, records, keys int) *recorder {
	return &recorder{start: start, keys: keys, sentAt: make([]time.Duration, records), maxAcked: map[int32]int64{}}
}

// bucket returns the bucket of offset at; r.mu is held.
func (r *recorder) bucket(at time.Duration) *timelineBucket {
	i := int(at / TimelineInterval)
	for len(r.buckets) <= i {
		r.buckets = append(r.buckets, timelineBucket{})
	}
	return &r.buckets[i]
}

// sent notes that the workload record at index i is handed to the
// producer now.
func (r *recorder) sent(i int) {
	if r == nil {
		return
	}
	at := max(time.Since(r.start), 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if i >= 0 && i < len(r.sentAt) {
		r.sentAt[i] = at
	}
	r.bucket(at).sent++
}

// outcome notes the outcome of a send.
func (r *recorder) outcome(a Ack, err error) {
	if r == nil {
		return
	}
	at := time.Since(r.start)
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.bucket(at)
	if err != nil {
		b.failed++
		return
	}
	b.acked++
	if i := a.Value.Seq*r.keys + a.Value.Key; i >= 0 && i < len(r.sentAt) && r.sentAt[i] > 0 {
		b.lat[latBin(at-r.sentAt[i])]++
	}
	if a.Offset >= 0 {
		if m, ok := r.maxAcked[a.Partition]; !ok || a.Offset > m {
			r.maxAcked[a.Partition] = a.Offset
		}
	}
}

// fault notes a fault step beginning now.
func (r *recorder) fault(op Op, broker int32, detail string) {
	if r == nil {
		return
	}
	at := time.Since(r.start)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.faults = append(r.faults, TimelineFault{At: at, Op: op, Broker: broker, Detail: detail})
}

// readProgress notes that the read back has remaining records to read; it
// keeps a sample per TimelineInterval, and the last.
func (r *recorder) readProgress(remaining int64) {
	if r == nil {
		return
	}
	at := time.Since(r.start)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.readLag) == 0 || at-r.lastRead >= TimelineInterval || remaining == 0 {
		r.readLag = append(r.readLag, TimelineLag{At: at, Records: remaining})
		r.lastRead = at
	}
}

// watchHighWatermarks samples the high watermark lag of topic every
// TimelineInterval until the returned stop is called, and once more then
// (stop may be called more than once).
func (r *recorder) watchHighWatermarks(ctx context.Context, adm *kadm.Client, topic string) (stop func()) {
	if r == nil {
		return func() {}
	}
	final := context.WithoutCancel(ctx)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(TimelineInterval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				r.sampleHighWatermarks(ctx, adm, topic)
			}
		}
	}()
	var once sync.Once
	return func() {
		cancel()
		<-done
		// One last sample, once the faults are over: a short run whose
		// samples all fell while a leader was down still shows its lag.
		once.Do(func() { r.sampleHighWatermarks(final, adm, topic) })
	}
}

// sampleHighWatermarks takes one high watermark lag sample. The acknowledged
// offsets are read before the high watermarks are asked for: a record
// acknowledged under acks=all was below the high watermark before its
// acknowledgement, so it cannot count as lag.
func (r *recorder) sampleHighWatermarks(ctx context.Context, adm *kadm.Client, topic string) {
	r.mu.Lock()
	at := time.Since(r.start)
	acked := make(map[int32]int64, len(r.maxAcked))
	for p, o := range r.maxAcked {
		acked[p] = o
	}
	r.mu.Unlock()
	if len(acked) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 3*TimelineInterval)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil || ends.Error() != nil {
		return
	}
	var lag int64
	for p, o := range acked {
		end, ok := ends.Lookup(topic, p)
		if !ok || end.Err != nil {
			return
		}
		lag += max(0, o+1-end.Offset)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hwLag = append(r.hwLag, TimelineLag{At: at, Records: lag})
}

// timeline returns what the recorder gathered.
func (r *recorder) timeline() *Timeline {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	tl := &Timeline{
		Interval: TimelineInterval, Duration: time.Since(r.start),
		Samples:          make([]TimelineSample, len(r.buckets)),
		Faults:           append([]TimelineFault(nil), r.faults...),
		HighWatermarkLag: append([]TimelineLag(nil), r.hwLag...),
		ReadLag:          append([]TimelineLag(nil), r.readLag...),
	}
	for i := range r.buckets {
		b := &r.buckets[i]
		s := TimelineSample{At: time.Duration(i) * TimelineInterval, Sent: b.sent, Acked: b.acked, Failed: b.failed}
		var n int
		for _, c := range b.lat {
			n += int(c)
		}
		if n > 0 {
			s.LatencyP50, s.LatencyP99 = b.lat.quantile(0.50, n), b.lat.quantile(0.99, n)
		}
		tl.Samples[i] = s
	}
	return tl
}
