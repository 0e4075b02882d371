package retry_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/internal/testkit"
	"github.com/kafkaguard/kafkaguard/kafkatest"
	"github.com/kafkaguard/kafkaguard/retry"
)

// fastBackoff keeps tests quick: 20ms, 40ms, 80ms, capped at 100ms, ±20%.
var fastBackoff = retry.Backoff{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond, Multiplier: 2, Jitter: 0.2}

// env is a cluster with a source topic and its retry and dead-letter topics.
type env struct {
	c     *kafkatest.Cluster
	topic string
	cl    *kgo.Client // producer, acks=all
}

func newEnv(t *testing.T, topic string, retryPartitions int32) *env {
	t.Helper()
	c := kafkatest.NewCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tp := range []struct {
		name string
		n    int32
	}{{topic, 3}, {topic + retry.RetrySuffix, retryPartitions}, {topic + retry.DeadLetterSuffix, 1}} {
		if err := c.CreateTopic(ctx, tp.name, tp.n, 1, nil); err != nil {
			t.Fatal(err)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.MetadataMinAge(100*time.Millisecond), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &env{c: c, topic: topic, cl: cl}
}

func (e *env) clientOpts() retry.GroupOpt {
	if os.Getenv("KGO_DEBUG") != "" {
		return retry.KgoOpts(kgo.SeedBrokers(e.c.Bootstrap()...), kgo.SessionTimeout(time.Second), kgo.HeartbeatInterval(100*time.Millisecond), kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelDebug, nil)))
	}
	return retry.KgoOpts(kgo.SeedBrokers(e.c.Bootstrap()...), kgo.SessionTimeout(time.Second), kgo.HeartbeatInterval(100*time.Millisecond))
}

// original returns a record as a consumer would have read it from the source
// topic.
func (e *env) original(i int, key string) *kgo.Record {
	r := &kgo.Record{Topic: e.topic, Partition: int32(i % 3), Offset: int64(i), Value: []byte(fmt.Sprintf("v%d", i)), Timestamp: time.UnixMilli(1_700_000_000_000 + int64(i))}
	if key != "" {
		r.Key = []byte(key)
	}
	r.Headers = []kgo.RecordHeader{{Key: "trace", Value: []byte(fmt.Sprint(i))}}
	return r
}

// runJob runs j until the returned stop function is called; stop returns
// Run's error.
func runJob(t *testing.T, j *retry.Job) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- j.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-errc:
			case <-time.After(30 * time.Second):
				err = fmt.Errorf("job did not stop")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// readAll reads every record of topic from the start to its current end.
func readAll(t *testing.T, c *kafkatest.Cluster, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return testkit.ReadAll(ctx, t, c.Bootstrap(), topic)
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
