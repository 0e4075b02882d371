package consume_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/consume"
	kgproduce "github.com/kafkaguard/kafkaguard/produce"
)

func TestNewRefusesContradictoryOptions(t *testing.T) {
	t.Parallel()
	nop := func(context.Context, *kgo.Record) error { return nil }
	seeds := kgo.SeedBrokers("127.0.0.1:1")
	callback := func(context.Context, *kgo.Client, map[string][]int32) {}
	for _, tc := range []struct {
		name    string
		handler consume.Handler
		opts    []consume.ConsumerOpt
		want    []string // every message part the error must contain
	}{
		{"retries with a bad backoff", nop, []consume.ConsumerOpt{consume.KgoOpts(seeds, kgo.ConsumerGroup("g"), kgo.ConsumeTopics("t")),
			consume.Retries(consume.RetryPolicy{Attempts: 2})}, []string{"Retries: retry: invalid option: Backoff.Initial must be > 0"}},
		{"no kgo options", nop, nil, []string{"KgoOpts (or Client) is required"}},
		{"no group", nop, []consume.ConsumerOpt{consume.KgoOpts(seeds, kgo.ConsumeTopics("t"))},
			[]string{"kgo.ConsumerGroup is required"}},
		{"no topics", nop, []consume.ConsumerOpt{consume.KgoOpts(seeds, kgo.ConsumerGroup("g"))},
			[]string{"kgo.ConsumeTopics"}},
		{"auto-commit of marks", nop, []consume.ConsumerOpt{consume.KgoOpts(seeds, kgo.ConsumerGroup("g"),
			kgo.ConsumeTopics("t"), kgo.AutoCommitMarks())}, []string{"kgo.AutoCommitMarks re-enables auto-commit"}},
		{"greedy auto-commit", nop, []consume.ConsumerOpt{consume.KgoOpts(seeds, kgo.ConsumerGroup("g"),
			kgo.ConsumeTopics("t"), kgo.GreedyAutoCommit())}, []string{"kgo.GreedyAutoCommit re-enables auto-commit"}},
		{"revoke callback", nop, []consume.ConsumerOpt{consume.KgoOpts(seeds, kgo.ConsumerGroup("g"),
			kgo.ConsumeTopics("t"), kgo.DisableAutoCommit(), kgo.OnPartitionsRevoked(callback))},
			[]string{"option 4 sets a partition callback"}},
		{"assign and lost callbacks", nop, []consume.ConsumerOpt{consume.KgoOpts(seeds, kgo.ConsumerGroup("g"),
			kgo.OnPartitionsAssigned(callback), kgo.ConsumeTopics("t"), kgo.OnPartitionsLost(callback))},
			[]string{"option 2 sets a partition callback", "option 4 sets a partition callback"}},
		{"drain outlives the rebalance", nop, []consume.ConsumerOpt{consume.KgoOpts(seeds, kgo.ConsumerGroup("g"),
			kgo.ConsumeTopics("t"), kgo.RebalanceTimeout(5*time.Second)), consume.DrainTimeout(5 * time.Second)},
			[]string{"DrainTimeout 5s must be below kgo.RebalanceTimeout 5s"}},
		{"kgo's own refusal", nop, []consume.ConsumerOpt{consume.KgoOpts(seeds, kgo.ConsumerGroup("g"),
			kgo.ConsumeTopics("t"), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"u": {0: kgo.NewOffset()}}))},
			[]string{"kgo refuses the options"}},
		{"every bad value at once", nil, []consume.ConsumerOpt{consume.KgoOpts(seeds, kgo.ConsumerGroup("g"), kgo.ConsumeTopics("t")),
			consume.Concurrency(0), consume.MaxBuffered(-1), consume.CommitInterval(0),
			consume.DrainTimeout(-1), consume.MetadataMaxBytes(-2), consume.OrderBy(consume.Order(9)),
			consume.Retries(consume.RetryPolicy{Attempts: 0})},
			[]string{"Retries: Attempts must be >= 1, got 0", "handler is nil", "Concurrency must be >= 1, got 0", "MaxBuffered must be >= 1, got -1",
				"CommitInterval must be > 0", "DrainTimeout must be > 0", "MetadataMaxBytes must be >= 0, got -2",
				"unknown order 9"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := consume.New(tc.handler, tc.opts...)
			if err == nil {
				c.Close()
				t.Fatal("New accepted the options")
			}
			if !errors.Is(err, consume.ErrInvalidOption) {
				t.Errorf("error %v does not wrap ErrInvalidOption", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestNewAcceptsTheUsersOwnDisableAutoCommit(t *testing.T) {
	t.Parallel()
	c, err := consume.New(func(context.Context, *kgo.Record) error { return nil },
		consume.KgoOpts(kgo.SeedBrokers("127.0.0.1:1"), kgo.ConsumerGroup("g"), kgo.ConsumeTopics("t"),
			kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll()))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Run(context.Background()); !errors.Is(err, consume.ErrRunning) {
		t.Fatalf("Run after Close returned %v, want ErrRunning", err)
	}
}

func TestNewExactlyOnceRefusesWhatTheModeCannotKeep(t *testing.T) {
	t.Parallel()
	nop := func(context.Context, *kgo.Record, *consume.Output) error { return nil }
	base := consume.KgoOpts(kgo.SeedBrokers("127.0.0.1:1"), kgo.ConsumerGroup("g"), kgo.ConsumeTopics("t"))
	txnID := consume.KgoOpts(kgo.TransactionalID("copier-1"))
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, tc := range []struct {
		name    string
		handler consume.TxnHandler
		opts    []consume.ExactlyOnceOpt
		want    []string
		unsafe  bool // also wraps produce.ErrUnsafeConfig
	}{
		{"no transactional id", nop, []consume.ExactlyOnceOpt{base}, []string{"TransactionalID"}, true},
		{"acks=1 and no idempotence", nop, []consume.ExactlyOnceOpt{base, txnID,
			consume.KgoOpts(kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())},
			[]string{"RequiredAcks", "DisableIdempotentWrite"}, true},
		{"read_uncommitted input", nop, []consume.ExactlyOnceOpt{base, txnID,
			consume.KgoOpts(kgo.FetchIsolationLevel(kgo.ReadUncommitted()))}, []string{"FetchIsolationLevel"}, true},
		{"client and retry path", nop, []consume.ExactlyOnceOpt{base, txnID, consume.Client(cl, consume.NewHooks()),
			consume.RetryPath(nopParker{})}, []string{"Client: NewExactlyOnce creates its client", "RetryPath: parking"}, false},
		{"in-process retries", nop, []consume.ExactlyOnceOpt{base, txnID, consume.Retries(consume.RetryPolicy{Attempts: 1})},
			[]string{"Retries: a record waiting for its next attempt would hold the transaction window open"}, false},
		{"bad values at once", nil, []consume.ExactlyOnceOpt{base, txnID, consume.TxnInterval(0), consume.Concurrency(0)},
			[]string{"handler is nil", "TxnInterval must be > 0, got 0s", "Concurrency must be >= 1"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := consume.NewExactlyOnce(tc.handler, tc.opts...)
			if err == nil {
				c.Close()
				t.Fatal("NewExactlyOnce accepted the options")
			}
			if !errors.Is(err, consume.ErrInvalidOption) {
				t.Errorf("error %v does not wrap ErrInvalidOption", err)
			}
			if tc.unsafe && !errors.Is(err, kgproduce.ErrUnsafeConfig) {
				t.Errorf("error %v does not wrap produce.ErrUnsafeConfig", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	c, err := consume.NewExactlyOnce(nop, base, txnID, consume.TxnInterval(50*time.Millisecond))
	if err != nil {
		t.Fatalf("valid options refused: %v", err)
	}
	c.Close()
}

type nopParker struct{}

func (nopParker) Park(context.Context, *kgo.Record, error) error { return nil }
