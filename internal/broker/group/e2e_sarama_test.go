package group_test

import (
	"context"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/group"
	"github.com/kafkaguard/kafkaguard/internal/testkit"
)

// saramaHandler records the claims of each session and marks an offset on
// its first claim so that the session commits it.
type saramaHandler struct {
	mu     sync.Mutex
	claims []int32
	mark   int64
}

func (h *saramaHandler) Setup(s sarama.ConsumerGroupSession) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.claims = slices.Clone(s.Claims()["t"])
	slices.Sort(h.claims)
	for _, p := range h.claims {
		s.MarkOffset("t", p, h.mark, "")
	}
	return nil
}

func (h *saramaHandler) Cleanup(sarama.ConsumerGroupSession) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.claims = nil
	return nil
}

func (h *saramaHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for {
		select {
		case _, ok := <-c.Messages():
			if !ok {
				return nil
			}
		case <-s.Context().Done():
			return nil
		}
	}
}

func (h *saramaHandler) get() []int32 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.claims)
}

func startSarama(t *testing.T, addr string, h *saramaHandler) (stop func()) {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_9_0_0
	cfg.ClientID = "sarama"
	cfg.Consumer.Group.Session.Timeout = time.Second
	cfg.Consumer.Group.Heartbeat.Interval = 50 * time.Millisecond
	cfg.Consumer.Group.Rebalance.Timeout = 2 * time.Second
	cfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRange()}
	cfg.Consumer.MaxWaitTime = 100 * time.Millisecond
	cfg.Consumer.Offsets.AutoCommit.Interval = 50 * time.Millisecond
	cfg.Metadata.Retry.Backoff = 10 * time.Millisecond
	cg, err := sarama.NewConsumerGroup([]string{addr}, "sg", cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{"t"}, h); err != nil && ctx.Err() == nil {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
			cg.Close()
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestSaramaConsumerGroupAgainstCoordinator(t *testing.T) {
	t.Parallel()
	c := group.NewCoordinator(group.Config{MinSessionTimeout: 100 * time.Millisecond, OffsetsPartitions: 1}, nil)
	t.Cleanup(c.Close)
	if err := c.Load(context.Background(), 0, &sliceStore{}, nil); err != nil {
		t.Fatal(err)
	}
	b := startMiniBroker(t, c)
	addr := net.JoinHostPort(b.host, strconv.Itoa(int(b.port)))

	h1, h2 := &saramaHandler{mark: 7}, &saramaHandler{mark: 7}
	startSarama(t, addr, h1)
	testkit.WaitFor(t, 20*time.Second, "the first sarama consumer to claim both partitions", func() bool {
		return slices.Equal(h1.get(), []int32{0, 1})
	})
	stop2 := startSarama(t, addr, h2)
	testkit.WaitFor(t, 20*time.Second, "the two sarama consumers to split the partitions", func() bool {
		p1, p2 := h1.get(), h2.get()
		return len(p1) == 1 && len(p2) == 1 && p1[0] != p2[0]
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	testkit.WaitFor(t, 20*time.Second, "sarama's auto-commit of the marked offsets", func() bool {
		fr := kmsg.NewPtrOffsetFetchRequest()
		fr.Version = 9
		fr.Groups = []kmsg.OffsetFetchRequestGroup{{Group: "sg", Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "t", Partitions: []int32{0, 1}}}}}
		ps := c.OffsetFetch(ctx, fr).Groups[0].Topics[0].Partitions
		return ps[0].Offset == 7 && ps[1].Offset == 7
	})
	stop2()
	testkit.WaitFor(t, 20*time.Second, "the first sarama consumer to claim both partitions again", func() bool {
		return slices.Equal(h1.get(), []int32{0, 1})
	})
}
