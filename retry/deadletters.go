package retry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/produce"
)

// HeaderReplayedFrom marks a record that DeadLetters.Replay wrote: the
// dead letter it came from, "topic/partition@offset". Replay looks for it
// in the destination to write each dead letter once.
const HeaderReplayedFrom = HeaderPrefix + "replayed-from"

// ReplayClockSkew is how far before a dead letter was written Replay looks
// for earlier replays of it in the destination: a replay is written after
// its dead letter, so only clock differences between the machines that
// wrote them can put it earlier.
const ReplayClockSkew = time.Hour

// Errors of DeadLetters.
var (
	// ErrNoSuchDeadLetter is returned by DeadLetters.Get for a partition and
	// offset that hold no record.
	ErrNoSuchDeadLetter = errors.New("retry: no such dead letter")
	// ErrReplay is wrapped by the error of Replay when some records could
	// not be written; its report says which.
	ErrReplay = errors.New("retry: replay incomplete")
)

// DeadLetters reads a dead-letter topic and replays its records: the
// library side of "kafkaguard dlq". The topic is DeadLetterTopic, or Topic's
// default dead-letter topic in the header mode (see Headers); records of
// both header formats are read. Close releases its client.
type DeadLetters struct {
	cfg   config
	topic string
	opts  []kgo.Opt // the connection, for the reading clients
	cl    *kgo.Client
	adm   *kadm.Client
}

// NewDeadLetters returns DeadLetters for the dead-letter topic of opts;
// KgoOpts gives the cluster. Its producing client is built with
// produce.NoLoss in front of KgoOpts. Invalid options wrap ErrInvalidOption.
func NewDeadLetters(opts ...DeadLettersOpt) (*DeadLetters, error) {
	c := newConfig(opts)
	var errs []error
	topic := c.dlqTopic
	if topic == "" && c.topic != "" {
		topic = DefaultDeadLetterTopic(c.topic, c.headers)
	}
	if topic == "" {
		errs = append(errs, fmt.Errorf("%w: Topic or DeadLetterTopic is required", ErrInvalidOption))
	}
	if c.headers != KafkaguardHeaders && c.headers != SpringHeaders {
		errs = append(errs, fmt.Errorf("%w: Headers: unknown mode %d", ErrInvalidOption, c.headers))
	}
	kopts, err := produce.ApplyKgo(produce.NoLoss, c.clientOpts)
	if err != nil {
		errs = append(errs, fmt.Errorf("%w: KgoOpts: %w", ErrInvalidOption, err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, fmt.Errorf("retry: dead letters client: %w", err)
	}
	return &DeadLetters{cfg: c, topic: topic, opts: c.clientOpts, cl: cl, adm: kadm.NewClient(cl)}, nil
}

// Topic returns the dead-letter topic.
func (d *DeadLetters) Topic() string { return d.topic }

// Close closes the client.
func (d *DeadLetters) Close() { d.cl.Close() }

// DeadLetter is one record of the dead-letter topic.
type DeadLetter struct {
	Partition int32     // in the dead-letter topic
	Offset    int64     // in the dead-letter topic
	Written   time.Time // the record's timestamp: when it was dead-lettered
	// Marker is the decoded record: the original record, its attempts and
	// its error history. Nil when the record does not decode (Err).
	Marker *Marker
	// Err says why the record does not decode: a malformed marker the Job
	// dead-lettered as it was, or a record no retry path wrote.
	Err    error
	Record *kgo.Record
}

// Source returns the dead letter's place, "topic/partition@offset", the
// value of HeaderReplayedFrom on its replays.
func (d *DeadLetter) Source() string {
	return d.Record.Topic + "/" + strconv.Itoa(int(d.Partition)) + "@" + strconv.FormatInt(d.Offset, 10)
}

// Cause returns why the record was dead-lettered: its last error, else its
// reason; for a record that does not decode, the reason header the Job wrote
// or the decoding error.
func (d *DeadLetter) Cause() string {
	if d.Marker != nil {
		if e := d.Marker.LastError(); e != "" {
			return e
		}
		return d.Marker.Reason
	}
	for _, h := range d.Record.Headers {
		if h.Key == HeaderReason {
			return string(h.Value)
		}
	}
	return "unreadable: " + d.Err.Error()
}

// Filter selects dead letters. The zero Filter selects all.
type Filter struct {
	Partitions []int32 // only these partitions; empty: all
	From       int64   // first offset
	Until      int64   // offset after the last; 0: up to the end
	// Key selects the records with this key; nil selects any key.
	Key []byte
	// ErrorContains selects the records with this text in an error of
	// their history, their reason or their Cause.
	ErrorContains string
}

func (f *Filter) match(d *DeadLetter) bool {
	if f.Key != nil {
		key := d.Record.Key
		if d.Marker != nil {
			key = d.Marker.Key
		}
		if !bytes.Equal(key, f.Key) {
			return false
		}
	}
	if f.ErrorContains == "" {
		return true
	}
	if strings.Contains(d.Cause(), f.ErrorContains) {
		return true
	}
	if d.Marker != nil {
		if strings.Contains(d.Marker.Reason, f.ErrorContains) {
			return true
		}
		for _, a := range d.Marker.History {
			if strings.Contains(a.Error, f.ErrorContains) {
				return true
			}
		}
	}
	return false
}

// Read returns the dead letters f selects, from the topic's start (or
// f.From) up to its end as it is when Read is called, by partition and
// offset.
func (d *DeadLetters) Read(ctx context.Context, f Filter) ([]*DeadLetter, error) {
	starts, err := d.adm.ListStartOffsets(ctx, d.topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("retry: listing %s: %w", d.topic, err)
	}
	// Up to the last stable offset: a dead letter of a transaction still
	// open (an ExactlyOnce Job) is listed once it commits.
	ends, err := d.adm.ListCommittedOffsets(ctx, d.topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("retry: listing %s: %w", d.topic, err)
	}
	ranges := map[int32][2]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if len(f.Partitions) > 0 && !slices.Contains(f.Partitions, o.Partition) {
			return
		}
		from, until := f.From, o.Offset
		if s, ok := starts.Lookup(d.topic, o.Partition); ok && s.Offset > from {
			from = s.Offset
		}
		if f.Until > 0 && f.Until < until {
			until = f.Until
		}
		if from < until {
			ranges[o.Partition] = [2]int64{from, until}
		}
	})
	for _, p := range f.Partitions {
		if _, ok := ends.Lookup(d.topic, p); !ok {
			return nil, fmt.Errorf("%w: %s has no partition %d", ErrNoSuchDeadLetter, d.topic, p)
		}
	}
	var out []*DeadLetter
	err = readRanges(ctx, d.opts, d.topic, ranges, true, func(r *kgo.Record) {
		dl := &DeadLetter{Partition: r.Partition, Offset: r.Offset, Written: r.Timestamp, Record: r}
		dl.Marker, dl.Err = ParseMarker(r)
		if dl.Err != nil {
			dl.Marker = nil
		}
		if f.match(dl) {
			out = append(out, dl)
		}
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b *DeadLetter) int {
		if a.Partition != b.Partition {
			return int(a.Partition - b.Partition)
		}
		return int(a.Offset - b.Offset)
	})
	return out, nil
}

// Get returns the dead letter at partition and offset, or an error wrapping
// ErrNoSuchDeadLetter.
func (d *DeadLetters) Get(ctx context.Context, partition int32, offset int64) (*DeadLetter, error) {
	dls, err := d.Read(ctx, Filter{Partitions: []int32{partition}, From: offset, Until: offset + 1})
	if err != nil {
		return nil, err
	}
	if len(dls) == 0 || dls[0].Offset != offset {
		return nil, fmt.Errorf("%w: %s/%d@%d", ErrNoSuchDeadLetter, d.topic, partition, offset)
	}
	return dls[0], nil
}

// readRanges calls fn for every record of topic in the offset range
// [from, until) of each partition of ranges: those of committed
// transactions only if committed (read_committed; until must not pass the
// last stable offset), else aborted ones included (read_uncommitted). A
// partition is done at its last offset; transaction
// markers are fetched too, to see that offset, but not passed to fn. When
// the last offsets of a range are gone all the same (compaction), fetches
// answer with nothing: after readQuiet polls in a row in which brokers
// answered fetches and no record came, the ranges are taken as read. A slow
// cluster that does not answer is not quiet: the read then ends with ctx.
func readRanges(ctx context.Context, opts []kgo.Opt, topic string, ranges map[int32][2]int64, committed bool, fn func(*kgo.Record)) error {
	if len(ranges) == 0 {
		return nil
	}
	start := map[int32]kgo.Offset{}
	for p, r := range ranges {
		start[p] = kgo.NewOffset().At(r[0])
	}
	var fetches fetchCounter
	copts := append(append([]kgo.Opt(nil), opts...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: start}),
		kgo.FetchMaxWait(200*time.Millisecond), kgo.KeepControlRecords(), kgo.WithHooks(&fetches))
	if committed {
		copts = append(copts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	cl, err := kgo.NewClient(copts...)
	if err != nil {
		return fmt.Errorf("retry: reading %s: %w", topic, err)
	}
	defer cl.Close()
	left := len(ranges)
	done := map[int32]bool{}
	quiet := 0
	for left > 0 {
		answered := fetches.n.Load()
		pctx, cancel := context.WithTimeout(ctx, readQuietPoll)
		fs := cl.PollFetches(pctx)
		cancel()
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("retry: reading %s: %w", topic, err)
		}
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			rg := ranges[r.Partition]
			if done[r.Partition] || r.Offset < rg[0] || r.Offset >= rg[1] {
				return
			}
			n++
			if !r.Attrs.IsControl() {
				fn(r)
			}
			if r.Offset+1 >= rg[1] {
				done[r.Partition] = true
				left--
			}
		})
		switch {
		case n > 0:
			quiet = 0
		case fetches.n.Load() > answered:
			if quiet++; quiet >= readQuiet {
				return nil
			}
		}
	}
	return nil
}

// How readRanges decides that nothing more will come.
const (
	readQuiet     = 2
	readQuietPoll = time.Second
)

// fetchCounter counts the fetch responses a client reads (a kgo hook).
type fetchCounter struct{ n atomic.Int64 }

// OnBrokerRead implements kgo.HookBrokerRead.
func (c *fetchCounter) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == 1 && err == nil { // Fetch
		c.n.Add(1)
	}
}

// ErrorGroup is the dead letters of one cause (see DeadLetter.Cause), by age.
type ErrorGroup struct {
	Cause          string
	Count          int
	Oldest, Newest time.Time // when the oldest and the newest were dead-lettered
	// ByAge counts the dead letters by how long ago they were written:
	// under an hour, a day, a week, and older.
	ByAge [4]int
}

// AgeBuckets names the buckets of ErrorGroup.ByAge.
var AgeBuckets = [4]string{"<1h", "<1d", "<7d", ">=7d"}

// Summarize groups dead letters by cause, the largest group first, and
// counts each group's by age at now.
func Summarize(dls []*DeadLetter, now time.Time) []ErrorGroup {
	idx := map[string]int{}
	var out []ErrorGroup
	for _, d := range dls {
		cause := d.Cause()
		i, ok := idx[cause]
		if !ok {
			i = len(out)
			idx[cause] = i
			out = append(out, ErrorGroup{Cause: cause, Oldest: d.Written, Newest: d.Written})
		}
		g := &out[i]
		g.Count++
		if d.Written.Before(g.Oldest) {
			g.Oldest = d.Written
		}
		if d.Written.After(g.Newest) {
			g.Newest = d.Written
		}
		switch age := now.Sub(d.Written); {
		case age < time.Hour:
			g.ByAge[0]++
		case age < 24*time.Hour:
			g.ByAge[1]++
		case age < 7*24*time.Hour:
			g.ByAge[2]++
		default:
			g.ByAge[3]++
		}
	}
	slices.SortStableFunc(out, func(a, b ErrorGroup) int { return b.Count - a.Count })
	return out
}

// Destination is where Replay sends dead letters.
type Destination int

const (
	// ToSource writes the original record (key, value, headers) back to
	// the topic it was first read from, for its consumers to run again.
	ToSource Destination = iota
	// ToRetry writes a new marker of the original record to its retry
	// topic (RetryTopic, or the default of the header mode), due at once
	// and with no attempt counted, for the Job to run it MaxAttempts more
	// times. Its earlier history stays in the dead letter.
	ToRetry
)

// String returns "source" or "retry".
func (d Destination) String() string {
	if d == ToRetry {
		return "retry"
	}
	return "source"
}

// ReplayOutcome says what Replay did with one dead letter.
type ReplayOutcome string

// Outcomes of a replayed dead letter.
const (
	Replayed        ReplayOutcome = "written"
	AlreadyReplayed ReplayOutcome = "already replayed"
	WouldReplay     ReplayOutcome = "would write" // dry run
	NotReplayed     ReplayOutcome = "skipped"     // it does not decode
	ReplayFailed    ReplayOutcome = "failed"
)

// ReplayItem is what Replay did with one dead letter.
type ReplayItem struct {
	From    string // the dead letter, topic/partition@offset
	Origin  Origin // the original record
	Topic   string // destination topic
	Outcome ReplayOutcome
	// Partition and Offset are where the replay was written (Replayed) or
	// found (AlreadyReplayed); -1 otherwise.
	Partition int32
	Offset    int64
	Err       string // why it was skipped or failed
}

// ReplayReport is what Replay did.
type ReplayReport struct {
	To                                               Destination
	DryRun                                           bool
	Items                                            []ReplayItem
	Written, AlreadyReplayed, Skipped, Failed, Would int
}

type replayConfig struct {
	dryRun   bool
	progress func(done, total int)
}

// ReplayOpt configures one DeadLetters.Replay.
type ReplayOpt func(*replayConfig)

// DryRun makes Replay write nothing: it reports what it would write and
// what was already replayed.
func DryRun() ReplayOpt { return func(c *replayConfig) { c.dryRun = true } }

// OnProgress calls fn as dead letters are dealt with: done of total.
func OnProgress(fn func(done, total int)) ReplayOpt { return func(c *replayConfig) { c.progress = fn } }

// Replay sends dls to their source topic or back to their retry topic (see
// Destination) and reports what it did, each write acknowledged by every
// in-sync replica.
//
// Replay is idempotent: each record it writes carries HeaderReplayedFrom,
// the dead letter's place, and before writing Replay reads every partition
// of each destination from the first record written since ReplayClockSkew
// before the oldest selected dead letter, and writes only the dead letters
// it finds no replay of. So a dead letter replayed twice, one replay after
// the other, is written once, as long as the destination still holds the
// first replay (retention). Two replays of the same dead letters running at
// the same moment can both write: run one at a time.
func (d *DeadLetters) Replay(ctx context.Context, dls []*DeadLetter, to Destination, opts ...ReplayOpt) (*ReplayReport, error) {
	var rc replayConfig
	for _, o := range opts {
		if o != nil {
			o(&rc)
		}
	}
	if to != ToSource && to != ToRetry {
		return nil, fmt.Errorf("%w: unknown destination %d", ErrInvalidOption, to)
	}
	rep := &ReplayReport{To: to, DryRun: rc.dryRun}
	total, done := len(dls), 0
	step := func(n int) {
		done += n
		if rc.progress != nil {
			rc.progress(done, total)
		}
	}
	type plan struct {
		item int
		rec  *kgo.Record
	}
	var plans []plan
	since := time.Time{}
	dests := map[string]bool{}
	for _, dl := range dls {
		it := ReplayItem{From: dl.Source(), Partition: -1, Offset: -1}
		if dl.Marker == nil {
			it.Outcome, it.Err = NotReplayed, "does not decode: "+dl.Err.Error()
			rep.Items = append(rep.Items, it)
			rep.Skipped++
			continue
		}
		m := dl.Marker
		it.Origin = m.Origin
		rec := d.replayRecord(m, to)
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: HeaderReplayedFrom, Value: []byte(it.From)})
		it.Topic = rec.Topic
		rep.Items = append(rep.Items, it)
		plans = append(plans, plan{len(rep.Items) - 1, rec})
		dests[rec.Topic] = true
		if since.IsZero() || dl.Written.Before(since) {
			since = dl.Written
		}
	}
	step(rep.Skipped)

	// What is already in the destinations.
	found := map[string][2]int64{} // from -> partition, offset
	for topic := range dests {
		if err := d.scanReplays(ctx, topic, since.Add(-ReplayClockSkew), found); err != nil {
			return nil, err
		}
	}
	var todo []plan
	for _, p := range plans {
		it := &rep.Items[p.item]
		if at, ok := found[it.From]; ok {
			it.Outcome, it.Partition, it.Offset = AlreadyReplayed, int32(at[0]), at[1]
			rep.AlreadyReplayed++
			step(1)
			continue
		}
		if rc.dryRun {
			it.Outcome = WouldReplay
			rep.Would++
			step(1)
			continue
		}
		todo = append(todo, p)
	}

	const chunk = 100
	var errs []error
	for len(todo) > 0 {
		n := min(chunk, len(todo))
		recs := make([]*kgo.Record, n)
		items := make(map[*kgo.Record]int, n) // results come in the order of their acks
		for i := range n {
			recs[i] = todo[i].rec
			items[recs[i]] = todo[i].item
		}
		results := d.cl.ProduceSync(ctx, recs...)
		for _, res := range results {
			it := &rep.Items[items[res.Record]]
			if res.Err != nil {
				it.Outcome, it.Err = ReplayFailed, res.Err.Error()
				rep.Failed++
				errs = append(errs, fmt.Errorf("%s: %w", it.From, res.Err))
				continue
			}
			it.Outcome, it.Partition, it.Offset = Replayed, res.Record.Partition, res.Record.Offset
			rep.Written++
			d.cfg.logger.Info("retry: replayed", "from", it.From, "origin", it.Origin.String(), "topic", it.Topic, "partition", it.Partition, "offset", it.Offset)
		}
		step(n)
		todo = todo[n:]
	}
	if len(errs) > 0 {
		return rep, fmt.Errorf("%w: %d of %d not written: %w", ErrReplay, rep.Failed, total, errors.Join(errs...))
	}
	return rep, nil
}

// replayRecord returns the record that replays m to its destination.
func (d *DeadLetters) replayRecord(m *Marker, to Destination) *kgo.Record {
	if to == ToSource {
		return &kgo.Record{Topic: m.Topic, Key: m.Key, Value: m.Value, Headers: append([]kgo.RecordHeader(nil), m.Headers...)}
	}
	now := time.Now()
	fresh := &Marker{Kind: KindMarker, Origin: m.Origin, Key: m.Key, Value: m.Value,
		Headers: append([]kgo.RecordHeader(nil), m.Headers...), Timestamp: m.Timestamp, Due: now, FirstFailed: now}
	return fresh.encodeAs(d.cfg.headers, d.cfg.retryTopicFor(m.Topic), KindMarker)
}

// scanReplays adds to found the HeaderReplayedFrom of every record of topic
// written since the given time.
func (d *DeadLetters) scanReplays(ctx context.Context, topic string, since time.Time, found map[string][2]int64) error {
	starts, err := d.adm.ListOffsetsAfterMilli(ctx, since.UnixMilli(), topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return fmt.Errorf("retry: replay destination %s: %w", topic, err)
	}
	ends, err := d.adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("retry: replay destination %s: %w", topic, err)
	}
	ranges := map[int32][2]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		from := int64(0)
		if s, ok := starts.Lookup(topic, o.Partition); ok && s.Offset >= 0 {
			from = s.Offset
		}
		if from < o.Offset {
			ranges[o.Partition] = [2]int64{from, o.Offset}
		}
	})
	return readRanges(ctx, d.opts, topic, ranges, false, func(r *kgo.Record) {
		for _, h := range r.Headers {
			if h.Key == HeaderReplayedFrom {
				found[string(h.Value)] = [2]int64{int64(r.Partition), r.Offset}
			}
		}
	})
}
