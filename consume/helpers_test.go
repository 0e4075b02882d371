package consume_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/consume"
	"github.com/kafkaguard/kafkaguard/internal/testkit"
	"github.com/kafkaguard/kafkaguard/kafkatest"
)

// value is what every test record carries: its key and its sequence number
// within the key, as "key:seq".
func value(key string, seq int) []byte { return []byte(key + ":" + strconv.Itoa(seq)) }

func parse(t testing.TB, v []byte) (string, int) {
	k, s, ok := strings.Cut(string(v), ":")
	n, err := strconv.Atoi(s)
	if !ok || err != nil {
		t.Errorf("malformed value %q", v)
	}
	return k, n
}

// keyed returns perKey records for each of keys keys, interleaved:
// k0:0, k1:0, ..., k0:1, k1:1, ...
func keyed(keys, perKey int) []*kgo.Record {
	rs := make([]*kgo.Record, 0, keys*perKey)
	for s := range perKey {
		for k := range keys {
			key := fmt.Sprintf("k%03d", k)
			rs = append(rs, &kgo.Record{Key: []byte(key), Value: value(key, s)})
		}
	}
	return rs
}

// produce writes rs to topic with acks=all, in order per partition, and
// returns them with their partitions and offsets set.
func produce(t testing.TB, c *kafkatest.Cluster, topic string, rs []*kgo.Record) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.MetadataMinAge(100*time.Millisecond), kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	return rs
}

func newTopic(t testing.TB, c *kafkatest.Cluster, topic string, partitions int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.CreateTopic(ctx, topic, partitions, 1, nil); err != nil {
		t.Fatal(err)
	}
}

// groupOpts are the kgo options of a test consumer: short timeouts so that
// rebalances and fetches are quick.
func groupOpts(c *kafkatest.Cluster, group string, topics ...string) consume.ConsumerOpt {
	return consume.KgoOpts(
		kgo.SeedBrokers(c.Bootstrap()...),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100*time.Millisecond),
		kgo.SessionTimeout(3*time.Second),
		kgo.HeartbeatInterval(100*time.Millisecond),
		kgo.RebalanceTimeout(20*time.Second),
	)
}

// scoped returns the shared options opts as options of one constructor
// (O: consume.ConsumerOpt or consume.SaramaOpt), followed by more.
func scoped[O any](opts []consume.Opt, more ...O) []O {
	out := make([]O, 0, len(opts)+len(more))
	for _, o := range opts {
		out = append(out, any(o).(O))
	}
	return append(out, more...)
}

// running is a consumer started with Run in the background.
type running struct {
	c    *consume.Consumer
	stop context.CancelFunc
	done chan error
}

func start(t testing.TB, handler consume.Handler, opts ...consume.ConsumerOpt) *running {
	t.Helper()
	c, err := consume.New(handler, opts...)
	return runConsumer(t, c, err)
}

// runConsumer runs c, which its constructor returned with err, in the
// background until the test ends.
func runConsumer(t testing.TB, c *consume.Consumer, err error) *running {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{c: c, stop: cancel, done: make(chan error, 1)}
	go func() { r.done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-r.wait()
	})
	return r
}

// wait returns a channel that yields Run's result once (and is closed
// after).
func (r *running) wait() <-chan error {
	ch := make(chan error, 1)
	go func() {
		err, ok := <-r.done
		if ok {
			close(r.done)
			ch <- err
		}
		close(ch)
	}()
	return ch
}

// shutdown stops the consumer gracefully and returns Run's result.
func (r *running) shutdown(t testing.TB) error {
	t.Helper()
	r.stop()
	select {
	case err := <-r.wait():
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return 30s after its context ended")
		return nil
	}
}

// withValue returns the record of rs whose value is v, or nil.
func withValue(rs []*kgo.Record, v string) *kgo.Record {
	for _, r := range rs {
		if string(r.Value) == v {
			return r
		}
	}
	return nil
}

// committed reads a group's committed offsets and metadata.
func committed(t testing.TB, c *kafkatest.Cluster, group string) kadm.OffsetResponses {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offs, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("fetch offsets: %v", err)
	}
	return offs
}

// endOffsets returns the log end offset of each partition of topic, within 10 s.
func endOffsets(t testing.TB, c *kafkatest.Cluster, topic string) map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	return testkit.EndOffsets(ctx, t, c.Bootstrap(), topic)
}

// waitCommittedAtEnd waits until group has committed the end offset of
// every partition of topic: every record was handled or skipped as done,
// so nothing is left that the consumer could still run. Records are no
// longer produced to topic when it is called.
func waitCommittedAtEnd(t testing.TB, c *kafkatest.Cluster, group, topic string, timeout time.Duration) {
	t.Helper()
	ends := endOffsets(t, c, topic)
	testkit.WaitFor(t, timeout, "the commit to reach the end of "+topic, func() bool {
		offs := committed(t, c, group)
		for p, end := range ends {
			if o, ok := offs.Lookup(topic, p); !ok || o.At != end {
				return false
			}
		}
		return true
	})
}

// ledger records every handler invocation.
type ledger struct {
	mu      sync.Mutex
	runs    map[string]int // "topic/partition@offset" -> invocations
	done    map[string]int // invocations that returned nil
	order   map[string][]int
	running map[string]int // key -> invocations in progress
	overlap []string       // keys that ran twice at once
	total   int
}

func newLedger() *ledger {
	return &ledger{runs: map[string]int{}, done: map[string]int{}, order: map[string][]int{}, running: map[string]int{}}
}

func at(r *kgo.Record) string { return fmt.Sprintf("%s/%d@%d", r.Topic, r.Partition, r.Offset) }

// enter records the start of a run of r under its ordering unit (a key, a
// partition, ...) and returns the function that records its end.
func (l *ledger) enter(t testing.TB, r *kgo.Record, unit string) (exit func(ok bool)) {
	key, seq := parse(t, r.Value)
	l.mu.Lock()
	l.runs[at(r)]++
	l.total++
	l.order[key] = append(l.order[key], seq)
	if l.running[unit]++; l.running[unit] > 1 {
		l.overlap = append(l.overlap, unit)
	}
	l.mu.Unlock()
	return func(ok bool) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.running[unit]--
		if ok {
			l.done[at(r)]++
		}
	}
}

func (l *ledger) doneCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.done)
}

func (l *ledger) invocations() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}
