package partitioner

import "log/slog"

// Option configures the partitioners returned by Kgo and Sarama.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	onChange      func(topic string, old, new int)
	strict        bool
	logger        *slog.Logger
	stickyRecords int // 0: not set
}

func newConfig(opts []Option) config {
	var c config
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	return c
}

// WithOnPartitionCountChange calls fn when a topic's partition count, as seen
// by keyed records, differs from the count seen before: old is the count keys
// were hashed over until now (with WithStrictPartitionCount, the first count),
// new the count seen now. fn is called once per change, on the producing
// goroutine that saw it, possibly concurrently for different topics; it must
// return quickly and must not produce.
func WithOnPartitionCountChange(fn func(topic string, old, new int)) Option {
	return optionFunc(func(c *config) { c.onChange = fn })
}

// WithStrictPartitionCount keeps per-key order when a topic's partition count
// changes: a Kgo partitioner keeps hashing keys over the first count it saw;
// a Sarama partitioner fails keyed messages with a
// *PartitionCountChangedError. See the package documentation.
func WithStrictPartitionCount() Option {
	return optionFunc(func(c *config) { c.strict = true })
}

// WithLogger sets the logger that partition count changes are reported to,
// at level Warn. The default, and the logger used for nil, is slog.Default().
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) { c.logger = l })
}

// WithStickyRecords makes the partitioner switch the partition it sends
// records without a key to after n such records. Values below 1 mean 1.
//
// Kgo partitioners switch at every new batch (KIP-480), as
// kgo.StickyPartitioner does, and by default have no record limit. Sarama
// gives partitioners no batch signal, so Sarama partitioners switch after 100
// records by default.
func WithStickyRecords(n int) Option {
	return optionFunc(func(c *config) { c.stickyRecords = max(n, 1) })
}
