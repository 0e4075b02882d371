package partitioner

import "log/slog"

// Opt configures the partitioners returned by Kgo and Sarama.
type Opt interface{ apply(*config) }

type optFunc func(*config)

func (f optFunc) apply(c *config) { f(c) }

type config struct {
	onChange      func(topic string, old, new int)
	strict        bool
	logger        *slog.Logger
	stickyRecords int // 0: not set
}

func newConfig(opts []Opt) config {
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

// OnPartitionCountChange calls fn when a topic's partition count, as seen
// by keyed records, differs from the count seen before: old is the count keys
// were hashed over until now (with StrictPartitionCount, the first count),
// new the count seen now. fn is called once per change, on the producing
// goroutine that saw it, possibly concurrently for different topics; it must
// return quickly and must not produce.
func OnPartitionCountChange(fn func(topic string, old, new int)) Opt {
	return optFunc(func(c *config) { c.onChange = fn })
}

// StrictPartitionCount keeps per-key order when a topic's partition count
// changes: a Kgo partitioner keeps hashing keys over the first count it saw;
// a Sarama partitioner fails keyed messages with a
// *PartitionCountChangedError. See the package documentation.
func StrictPartitionCount() Opt {
	return optFunc(func(c *config) { c.strict = true })
}

// Logger sets the logger that partition count changes are reported to,
// at level Warn. The default, and the logger used for nil, is slog.Default().
func Logger(l *slog.Logger) Opt {
	return optFunc(func(c *config) { c.logger = l })
}

// StickyRecords makes the partitioner switch the partition it sends
// records without a key to after n such records. Values below 1 mean 1.
//
// Kgo partitioners switch at every new batch (KIP-480), as
// kgo.StickyPartitioner does, and by default have no record limit. Sarama
// gives partitioners no batch signal, so Sarama partitioners switch after 100
// records by default.
func StickyRecords(n int) Opt {
	return optFunc(func(c *config) { c.stickyRecords = max(n, 1) })
}
