package verify

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/kafkatest"
)

// TestClientOptsReachEveryClient: the connection options (TLS, SASL) go to
// each franz-go client a run makes — admin, producer, read-back consumer —
// and to ExecFaults' Metadata client, or a secured cluster would refuse one.
// Here the seed broker's name resolves only through the dialer in
// ClientOpts, so a client made without them cannot reach the cluster.
func TestClientOptsReachEveryClient(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t, kafkatest.Brokers(3))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const seed = "seed.invalid:1"
	real := c.Bootstrap()[0]
	dialer := kgo.Dialer(func(ctx context.Context, network, host string) (net.Conn, error) {
		if host == seed {
			host = real
		}
		var d net.Dialer
		return d.DialContext(ctx, network, host)
	})
	ef := &ExecFaults{Bootstrap: []string{seed}, ClientOpts: []kgo.Opt{dialer}}
	defer ef.Close()
	res, err := Run(ctx, Config{Records: 20, Keys: 2, Rate: 10000, Bootstrap: []string{seed}, ClientOpts: []kgo.Opt{dialer}})
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Err(); err != nil || res.Report.Acked != 20 || res.Report.Read != 20 {
		t.Fatalf("acked %d, read %d: %v", res.Report.Acked, res.Report.Read, err)
	}
	if _, err := ef.Leader(ctx, res.Topic, 0); err != nil {
		t.Fatal(err)
	}
}
