package fastbench

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"strconv"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/internal/broker/cluster"
)

// orders makes JSON-like record values, as an order service might produce: repeated field
// names, a few enumerations, ids and amounts that vary. They compress as real event streams do,
// unlike random bytes (which do not compress) or repeated bytes (which compress absurdly well).
type orders struct {
	rng *rand.Rand
	n   int
}

func newOrders(seed uint64) *orders { return &orders{rng: rand.New(rand.NewPCG(seed, seed+1))} }

var (
	statuses   = []string{"created", "paid", "packed", "shipped", "delivered", "cancelled"}
	currencies = []string{"EUR", "USD", "GBP"}
	skus       = []string{"book-0193", "mug-blue", "tee-m-black", "cable-usbc-2m", "lamp-desk", "pen-gel-07"}
)

// next returns the next value, about 250 bytes.
func (r *orders) next() []byte {
	r.n++
	g := r.rng
	b := make([]byte, 0, 320)
	b = append(b, `{"order_id":"ord-`...)
	b = strconv.AppendInt(b, int64(1_000_000+r.n), 10)
	b = append(b, `","customer_id":"cus-`...)
	b = strconv.AppendInt(b, int64(g.IntN(50_000)), 10)
	b = append(b, `","status":"`...)
	b = append(b, statuses[g.IntN(len(statuses))]...)
	b = append(b, `","items":[`...)
	for i := range 1 + g.IntN(3) {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"sku":"`...)
		b = append(b, skus[g.IntN(len(skus))]...)
		b = append(b, `","qty":`...)
		b = strconv.AppendInt(b, int64(1+g.IntN(4)), 10)
		b = append(b, `,"price_cents":`...)
		b = strconv.AppendInt(b, int64(199+g.IntN(9800)), 10)
		b = append(b, '}')
	}
	b = append(b, `],"currency":"`...)
	b = append(b, currencies[g.IntN(len(currencies))]...)
	b = append(b, `","created_at":"2026-12-06T09:`...)
	b = fmt.Appendf(b, "%02d:%02d.%03dZ", g.IntN(60), g.IntN(60), g.IntN(1000))
	b = append(b, `"}`...)
	return b
}

// startBroker starts a one-broker bundled cluster with its data under dir, logging nothing.
func startBroker(ctx context.Context, dir string, zeroCopy bool) (*cluster.Cluster, error) {
	c, err := cluster.Start(ctx, cluster.Config{
		Brokers: 1, DataDir: dir, DisableZeroCopy: !zeroCopy,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return nil, fmt.Errorf("fastbench: starting the bundled broker: %w", err)
	}
	return c, nil
}

// createTopic creates topic with partitions partitions on c.
func createTopic(ctx context.Context, c *cluster.Cluster, topic string, partitions int32) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...))
	if err != nil {
		return fmt.Errorf("fastbench: %w", err)
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("fastbench: creating topic %s: %w", topic, err)
	}
	return nil
}

// brokerDir is the data directory of the broker named name under dir.
func brokerDir(dir, name string) string { return filepath.Join(dir, "broker-"+name) }
