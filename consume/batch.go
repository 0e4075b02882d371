package consume

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/ordering"
)

// DefaultBatchSize is the default bound on the records of one batch
// (NewBatch).
const DefaultBatchSize = 100

// BatchHandler processes a batch of records of one partition, in offset
// order (see NewBatch). Returning nil marks every record of the batch
// handled; an error (or a panic) fails the batch as a whole.
type BatchHandler func(ctx context.Context, rs []*kgo.Record) error

// BatchOpt configures a batch Consumer (NewBatch): every ConsumerOpt, and
// BatchSize.
type BatchOpt interface {
	option
	batchOpt()
}

type batchOnlyOpt func(*config) // BatchOpt

func (f batchOnlyOpt) apply(c *config) { f(c) }
func (batchOnlyOpt) batchOpt()         {}
func (bothOpt) batchOpt()              {}
func (consumerOpt) batchOpt()          {}

// BatchSize bounds the records of one batch of a batch Consumer. The
// default is DefaultBatchSize.
func BatchSize(n int) BatchOpt { return batchOnlyOpt(func(c *config) { c.batchSize = n }) }

// NewBatch returns a Consumer that hands records to handler in batches: the
// records one poll returned for a partition, in offset order, at most
// BatchSize at a time (a batch never waits for more records to fill up).
// The commit rules hold per batch: no offset of a batch is committed before
// the whole batch is handled, so a crash (or a revocation past the drain
// timeout) in the middle of a batch runs the whole batch again; a batch
// done above the committed offset is named in the commit metadata and
// skipped after a restart when the restarted consumer forms the same batch
// or one inside it (a batch that straddles such records runs whole).
//
// A batch holds many keys, so in KeyOrder (the default) and PartitionOrder
// the batches of a partition run one at a time, in offset order, and
// different partitions in parallel; in Unordered the batches of a partition
// run in parallel too. Concurrency and MaxBuffered count batches.
//
// A failed batch is retried as a unit: Retries runs the whole batch again,
// Consumer.Retry too. With a retry path (RetryPath) it is then parked
// record by record, each with the batch's error, in offset order, and the
// batch counts handled once every record is parked; if a Park fails the
// batch blocks its partition with a *ParkError, and a Retry runs the handler
// and parks again every record (those parked before the failure twice: the
// retry job handles the second marker as a record retried again). Without
// a retry path a failed batch blocks its partition (Failure.Batch holds the
// records; Resolve and Retry take the batch's first offset). A batch's
// handle span (Tracing) has the first record's trace context as parent.
//
// The sarama adapter (SaramaHandler) and the exactly-once mode
// (NewExactlyOnce) have no batch variant: a batch handler is refused there
// by type, as NewSarama and NewExactlyOnce take a record handler only.
func NewBatch(handler BatchHandler, opts ...BatchOpt) (*Consumer, error) {
	cfg := newConfig(opts)
	var handle func(context.Context, *kgo.Record) error
	if handler != nil {
		handle = func(ctx context.Context, first *kgo.Record) error { return handler(ctx, batchOf(first)) }
	}
	if cfg.batchSize < 1 {
		return nil, fmt.Errorf("%w: BatchSize must be >= 1, got %d", ErrInvalidOption, cfg.batchSize)
	}
	cfg.batch = true
	return newConsumer(cfg, handle, nil)
}

// batchKey is the context key under which a batch's first record carries
// the batch (in its Context).
type batchKey struct{}

// newBatch makes rs (one partition's records in offset order, at least
// one) a batch and returns the message that stands for it: its first
// record, carrying the batch in its Context.
func newBatch(rs []*kgo.Record) ordering.Message[*kgo.Record] {
	first, last := rs[0], rs[len(rs)-1]
	parent := first.Context
	if parent == nil {
		parent = context.Background()
	}
	first.Context = context.WithValue(parent, batchKey{}, rs)
	// No key: the batches of a partition are ordered with each other in
	// KeyOrder, as a batch holds many keys.
	return ordering.Message[*kgo.Record]{Topic: first.Topic, Partition: first.Partition,
		Offset: first.Offset, Last: last.Offset, Value: first}
}

// batchOf returns the batch whose first record is first, or nil if first
// heads no batch.
func batchOf(first *kgo.Record) []*kgo.Record {
	if first == nil || first.Context == nil {
		return nil
	}
	rs, _ := first.Context.Value(batchKey{}).([]*kgo.Record)
	return rs
}

// submitBatches hands the records fs holds to the dispatcher as batches.
func (c *Consumer) submitBatches(ctx context.Context, fs kgo.Fetches) {
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		for rs := p.Records; len(rs) > 0; {
			n := min(len(rs), c.cfg.batchSize)
			c.submitMessage(ctx, newBatch(rs[:n:n]))
			rs = rs[n:]
		}
	})
}
