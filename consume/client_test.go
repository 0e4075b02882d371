package consume_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/consume"
	"github.com/kafkaguard/kafkaguard/internal/testkit"
	"github.com/kafkaguard/kafkaguard/kafkatest"
)

// A Consumer given the application's own client (Client, Hooks) handles and
// commits every record like one that creates its client, and leaves the
// client open for the application, which closes it.
func TestConsumerOnTheApplicationsClientCommitsAndLeavesItOpen(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t)
	const topic, group = "own-client", "g-own-client"
	newTopic(t, c, topic, 3)
	rs := produce(t, c, topic, keyed(10, 10))

	hooks := consume.NewHooks()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(c.Bootstrap()...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100 * time.Millisecond),
	}, hooks.KgoOpts()...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	l := newLedger()
	run := start(t, func(_ context.Context, r *kgo.Record) error {
		l.enter(t, r, string(r.Key))(true)
		return nil
	}, consume.Client(cl, hooks), consume.CommitInterval(50*time.Millisecond))
	testkit.WaitFor(t, 20*time.Second, "every record handled", func() bool { return l.doneCount() == len(rs) })
	if err := run.shutdown(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	ends := endOffsets(t, c, topic)
	offs := committed(t, c, group)
	for p, end := range ends {
		if o, ok := offs.Lookup(topic, p); !ok || o.At != end {
			t.Errorf("partition %d: committed %+v, want %d", p, o, end)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.Ping(ctx); err != nil {
		t.Errorf("the application's client after Run: %v, want it still open", err)
	}
}

func TestClientIsRefusedWithoutItsHooks(t *testing.T) {
	t.Parallel()
	nop := func(context.Context, *kgo.Record) error { return nil }
	base := []kgo.Opt{kgo.SeedBrokers("127.0.0.1:1"), kgo.ConsumerGroup("g"), kgo.ConsumeTopics("t")}
	plain, err := kgo.NewClient(base...)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	hooks := consume.NewHooks()
	hooked, err := kgo.NewClient(append(base, hooks.KgoOpts()...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer hooked.Close()
	for _, tc := range []struct {
		name string
		opts []consume.ConsumerOpt
		want []string
	}{
		{"client without the hooks' options", []consume.ConsumerOpt{consume.Client(plain, consume.NewHooks())},
			[]string{"lacks kgo.DisableAutoCommit", "lacks kgo.BlockRebalanceOnPoll"}},
		{"no hooks", []consume.ConsumerOpt{consume.Client(hooked, nil)}, []string{"Client needs the Hooks"}},
		{"client and kgo options", []consume.ConsumerOpt{consume.Client(hooked, hooks), consume.KgoOpts(base...)},
			[]string{"Client and KgoOpts exclude each other"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := consume.New(nop, tc.opts...)
			if !errors.Is(err, consume.ErrInvalidOption) {
				t.Fatalf("New: %v, want ErrInvalidOption", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	c, err := consume.New(nop, consume.Client(hooked, hooks))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := consume.New(nop, consume.Client(hooked, hooks)); err == nil || !strings.Contains(err.Error(), "another Consumer") {
		t.Errorf("a second Consumer on the same Hooks: %v", err)
	}
}
