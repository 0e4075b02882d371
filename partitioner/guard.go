package partitioner

import "log/slog"

// countGuard watches the partition count of one topic as seen by keyed
// records. It is owned by one topic partitioner and needs no lock: kgo and
// sarama partition one record of a topic at a time.
type countGuard struct {
	topic  string
	cfg    *config
	action string // what the partitioner does after a change, for the log
	base   int    // count keys are hashed over; 0 before the first keyed record
	last   int    // count seen with the latest keyed record
}

// observe notes that a keyed record sees n partitions, reports a change, and
// returns the count the key must be hashed over. In strict mode that stays
// the first count; changed reports whether n differs from it.
func (g *countGuard) observe(n int) (use int, changed bool) {
	if g.base == 0 {
		g.base, g.last = n, n
		return n, false
	}
	if n != g.last {
		g.last = n
		if n != g.base {
			g.report(g.base, n)
		}
		if !g.cfg.strict {
			g.base = n
		}
	}
	return g.base, n != g.base
}

func (g *countGuard) report(old, new int) {
	g.cfg.logger.Warn("kafkaguard: partition count changed under a keyed producer; keys hashed over the new count move partition and lose per-key order",
		slog.String("topic", g.topic),
		slog.Int("old", old),
		slog.Int("new", new),
		slog.String("action", g.action))
	if g.cfg.onChange != nil {
		g.cfg.onChange(g.topic, old, new)
	}
}
