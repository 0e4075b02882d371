package verify

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/produce"
)

// Ack is one acknowledged record: its value and where the broker said it
// was written (offset -1 when the preset asks for no answer).
type Ack struct {
	Value     Value `json:"value"`
	Partition int32 `json:"partition"`
	Offset    int64 `json:"offset"`
}

// tally collects the producer's outcomes; callbacks from the client's
// goroutines write it.
type tally struct {
	mu       sync.Mutex
	acked    []Ack
	failed   int
	firstErr error
	settled  int
	cond     *sync.Cond
	// byPartition counts acknowledgements per partition.
	byPartition map[int32]int
	// timeline, if set, is told every outcome.
	timeline *recorder
	// sends are every outcome with its time, for the history.
	sends []timedSend
}

// timedSend is one outcome and when it arrived.
type timedSend struct {
	Ack
	acked bool
	at    time.Time
}

func newTally() *tally {
	t := &tally{byPartition: map[int32]int{}}
	t.cond = sync.NewCond(&t.mu)
	return t
}

func (t *tally) record(a Ack, err error) {
	t.timeline.outcome(a, err)
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		t.failed++
		if t.firstErr == nil {
			t.firstErr = err
		}
	} else {
		t.acked = append(t.acked, a)
		t.byPartition[a.Partition]++
	}
	t.sends = append(t.sends, timedSend{Ack: a, acked: err == nil, at: time.Now()})
	t.settled++
	t.cond.Broadcast()
}

// history returns every outcome as a [Send], with times since origin.
func (t *tally) history(origin time.Time) []Send {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Send, len(t.sends))
	for i, s := range t.sends {
		out[i] = Send{Value: s.Value, Acked: s.acked, Partition: s.Partition, Offset: s.Offset, At: s.at.Sub(origin)}
		if !s.acked {
			out[i].Partition, out[i].Offset = -1, -1
		}
	}
	return out
}

func (t *tally) counts() (acked, failed int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.acked), t.failed
}

// ackedFrom counts the acknowledgements on partition p of workload
// records at index from or later (see [Workload]; keys is its key count).
func (t *tally) ackedFrom(p int32, keys, from int) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, a := range t.acked {
		if a.Partition == p && a.Value.Seq*keys+a.Value.Key >= from {
			n++
		}
	}
	return n
}

// busiestPartition returns the partition with the most acknowledgements
// so far (the lowest on a tie), or 0 if none has any.
func (t *tally) busiestPartition() int32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	best, most := int32(0), 0
	for p, n := range t.byPartition {
		if p >= 0 && (n > most || (n == most && p < best)) {
			best, most = p, n
		}
	}
	return best
}

// waitSettled waits until n outcomes are in or ctx ends.
func (t *tally) waitSettled(ctx context.Context, n int) error {
	stop := context.AfterFunc(ctx, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.cond.Broadcast()
	})
	defer stop()
	t.mu.Lock()
	defer t.mu.Unlock()
	for t.settled < n {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("verify: %d of %d sends have no outcome: %w", n-t.settled, n, err)
		}
		t.cond.Wait()
	}
	return nil
}

// sender is the producer under test.
type sender interface {
	// send hands v to the client; it blocks while the client's buffer is
	// full. The outcome goes to the tally.
	send(ctx context.Context, topic string, v Value)
	// flush waits for the outcome of every record sent so far.
	flush(ctx context.Context, sent int) error
	close(ctx context.Context) error
}

func newSender(ctx context.Context, cfg Config, t *tally) (sender, error) {
	switch cfg.Client {
	case ClientFranzGo:
		return newKgoSender(ctx, cfg, t)
	case ClientSarama:
		return newSaramaSender(cfg, t)
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownClient, cfg.Client)
}

// kgoTuning are options Run puts before the application's for a fast
// failover in a test: fresh metadata and short backoffs.
func kgoTuning() []kgo.Opt {
	return []kgo.Opt{
		kgo.ClientID("kafkaguard-verify"),
		kgo.MetadataMinAge(100 * time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }),
		kgo.ProduceRequestTimeout(5 * time.Second),
	}
}

type kgoSender struct {
	p *produce.Producer
	t *tally
}

func newKgoSender(ctx context.Context, cfg Config, t *tally) (*kgoSender, error) {
	opts := append(cfg.clientOpts(kgoTuning()...), cfg.KgoOpts...)
	p, err := produce.New(ctx, cfg.Preset, opts...)
	if err != nil {
		return nil, fmt.Errorf("verify: franz-go producer: %w", err)
	}
	return &kgoSender{p: p, t: t}, nil
}

func (s *kgoSender) send(ctx context.Context, topic string, v Value) {
	r := &kgo.Record{Topic: topic, Key: []byte(v.RecordKey()), Value: []byte(v.String())}
	s.p.SendAsync(ctx, r, func(r *kgo.Record, err error) {
		a := Ack{Value: v, Partition: -1, Offset: -1}
		if r != nil && err == nil {
			a.Partition, a.Offset = r.Partition, r.Offset
		}
		s.t.record(a, err)
	})
}

func (s *kgoSender) flush(ctx context.Context, sent int) error {
	if err := s.p.Flush(ctx); err != nil {
		return err
	}
	return s.t.waitSettled(ctx, sent)
}

func (s *kgoSender) close(ctx context.Context) error { return s.p.Close(ctx) }

// SaramaBaseConfig returns the sarama configuration Run starts from when
// Config.Sarama is nil: sarama's defaults with quick metadata retries and a
// 5 s produce timeout, so that a failover is noticed quickly.
func SaramaBaseConfig() *sarama.Config {
	c := sarama.NewConfig()
	c.ClientID = "kafkaguard-verify"
	c.Metadata.Retry.Backoff = 100 * time.Millisecond
	c.Metadata.Retry.Max = 50
	c.Producer.Timeout = 5 * time.Second
	c.Producer.Retry.Backoff = 100 * time.Millisecond
	return c
}

type saramaSender struct {
	ap      sarama.AsyncProducer
	t       *tally
	drained chan struct{} // closed once Successes and Errors are closed
	once    sync.Once
}

func newSaramaSender(cfg Config, t *tally) (*saramaSender, error) {
	base := cfg.Sarama
	if base == nil {
		base = SaramaBaseConfig()
	}
	c := *base
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	if err := produce.ApplySarama(cfg.Preset, &c); err != nil {
		return nil, fmt.Errorf("verify: sarama producer: %w", err)
	}
	ap, err := sarama.NewAsyncProducer(cfg.Bootstrap, &c)
	if err != nil {
		return nil, fmt.Errorf("verify: sarama producer: %w", err)
	}
	s := &saramaSender{ap: ap, t: t, drained: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for m := range ap.Successes() {
			v, _ := m.Metadata.(Value)
			off := m.Offset
			if c.Producer.RequiredAcks == sarama.NoResponse {
				off = -1
			}
			t.record(Ack{Value: v, Partition: m.Partition, Offset: off}, nil)
		}
	}()
	go func() {
		defer wg.Done()
		for e := range ap.Errors() {
			v, _ := e.Msg.Metadata.(Value)
			t.record(Ack{Value: v}, e.Err)
		}
	}()
	go func() { wg.Wait(); close(s.drained) }()
	return s, nil
}

func (s *saramaSender) send(ctx context.Context, topic string, v Value) {
	m := &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(v.RecordKey()),
		Value: sarama.StringEncoder(v.String()), Metadata: v}
	select {
	case s.ap.Input() <- m:
	case <-ctx.Done():
		s.t.record(Ack{Value: v}, ctx.Err())
	}
}

func (s *saramaSender) flush(ctx context.Context, sent int) error {
	return s.t.waitSettled(ctx, sent)
}

func (s *saramaSender) close(ctx context.Context) error {
	s.once.Do(s.ap.AsyncClose)
	select {
	case <-s.drained:
		return nil
	case <-ctx.Done():
		return errors.Join(errors.New("verify: sarama producer still closing"), ctx.Err())
	}
}
