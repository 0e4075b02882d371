package verify

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/internal/testkit/bundled"
	"github.com/kafkaguard/kafkaguard/produce"
)

// A Kafka broker applies a fencing a moment after the controller decides it,
// so read-back can be handed metadata that still names a killed leader (seen
// against Apache Kafka 4.4 after a restart that does not wait): its dial is
// refused until the metadata catches up. The end offsets must be asked again
// rather than failing the run.
func TestStableEndOffsetsOutlastsARefusedLeader(t *testing.T) {
	t.Parallel()
	const topic = "ends-refused-leader"
	c, leader := bundled.ThreeBrokers(t, topic, nil)
	var addr string
	for _, b := range c.Brokers() {
		if b.ID == leader {
			addr = b.Address
		}
	}
	var refuseUntil atomic.Int64
	refuseUntil.Store(time.Now().Add(3 * time.Second).UnixNano())
	var refused atomic.Int32
	var d net.Dialer
	dial := func(ctx context.Context, network, host string) (net.Conn, error) {
		if host == addr && time.Now().UnixNano() < refuseUntil.Load() {
			refused.Add(1)
			return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
		}
		return d.DialContext(ctx, network, host)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.Dialer(dial),
		kgo.MetadataMinAge(100*time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := stableEndOffsets(ctx, kadm.NewClient(cl), topic, settleTime(produce.NoLoss))
	if err != nil {
		t.Fatalf("stableEndOffsets with leader %d (%s) refusing dials for 3 s: %v", leader, addr, err)
	}
	if refused.Load() == 0 {
		t.Fatalf("no dial to the leader %s was refused: the test did not exercise its case", addr)
	}
	if o, ok := ends.Lookup(topic, 0); !ok || o.Err != nil || o.Offset != 0 {
		t.Fatalf("end offset of %s/0 = %+v (found %v), want 0", topic, o, ok)
	}
	if time.Now().UnixNano() < refuseUntil.Load() {
		t.Fatal("stableEndOffsets answered while the leader still refused dials")
	}
}

func TestPermanentKafkaError(t *testing.T) {
	t.Parallel()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	shards := func(errs ...error) error {
		se := &kadm.ShardErrors{Name: "ListOffsets"}
		for _, e := range errs {
			se.Errs = append(se.Errs, kadm.ShardError{Err: e})
		}
		return fmt.Errorf("wrapped: %w", se)
	}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{refused, false},
		{kerr.NotLeaderForPartition, false},
		{kerr.OffsetNotAvailable, false},
		{kerr.TopicAuthorizationFailed, true},
		{shards(refused), false},
		{shards(refused, kerr.UnknownTopicOrPartition), false},
		{shards(refused, kerr.TopicAuthorizationFailed), true},
	} {
		if got := permanentKafkaError(tc.err); got != tc.want {
			t.Errorf("permanentKafkaError(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
