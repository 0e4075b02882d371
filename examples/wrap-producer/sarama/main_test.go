package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/examples/wrap-producer/internal/wraptest"
	"github.com/kafkaguard/kafkaguard/kafkatest"
)

func TestRunShowsWhatNoLossFindsAndProducesWithIt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, []string{"-n", "4"}, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, &out)
	}
	for _, want := range []string{"NoLoss finds in the current config:", "Producer.RequiredAcks = WaitForLocal",
		"Producer.Idempotent = false", "Net.MaxOpenRequests = 5", `acked order-0 "order 0" at orders/`, `acked order-0 "order 3" at orders/`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, &out)
		}
	}
	if got := strings.Count(out.String(), "acked "); got != 4 {
		t.Errorf("%d records acked, want 4:\n%s", got, &out)
	}
}

func TestRunProducesToAGivenClusterAndTheRecordsAreThere(t *testing.T) {
	c := kafkatest.NewCluster(t, kafkatest.Brokers(3))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, []string{"-bootstrap", strings.Join(c.Bootstrap(), ","), "-topic", "payments", "-n", "6"}, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, &out)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.ConsumeTopics("payments"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seen := map[string]bool{}
	for len(seen) < 6 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
	}
	if len(seen) != 6 {
		t.Fatalf("read back %d of 6 acked records: %v", len(seen), seen)
	}
}

func TestRunRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-n", "0"}, {"-nope"}} {
		var out bytes.Buffer
		if err := run(context.Background(), args, &out); err == nil {
			t.Errorf("run(%q) succeeded", args)
		}
	}
}

// Both wrap-producer programs (franzgo and sarama) put a key on the partition
// partitioner.HashMurmur2 picks, so that franz-go and sarama producers of one
// topic agree (sarama's default hash partitioner is FNV-1a: they would not).
func TestEachKeyLandsOnTheSamePartitionAsFromTheOtherClient(t *testing.T) {
	wraptest.KeysOnMurmur2Partitions(t, run)
}
