package server

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
	"github.com/kafkaguard/kafkaguard/internal/broker/wire"
)

// slowController registers brokers but publishes no image until told to.
type slowController struct{ registered chan Listener }

func (c *slowController) Register(_ context.Context, _ meta.Broker, l Listener) error {
	c.registered <- l
	return nil
}
func (c *slowController) Heartbeat(context.Context) error { return nil }
func (c *slowController) CreateTopics(_ context.Context, specs []TopicSpec, _ bool) []error {
	return make([]error, len(specs))
}
func (c *slowController) DeleteTopics(_ context.Context, names []string) []error {
	return make([]error, len(names))
}
func (c *slowController) CreatePartitions(context.Context, string, int32, bool) error {
	return nil
}
func (c *slowController) AlterISR(context.Context, string, int32, int32, int32, []int32) error {
	return nil
}
func (c *slowController) AllocateProducerID(context.Context) (int64, error) { return 1, nil }
func (c *slowController) AlterScramCredentials(_ context.Context, changes []ScramChange) []error {
	return make([]error, len(changes))
}

// A (re)started node knows nothing until the controller's first image arrives: it must not
// answer clients before that (sarama's first Metadata used to crash a node in that window), and
// it answers them as soon as the image is applied.
func TestNodeServesConnectionsOnlyAfterItsFirstMetadataImage(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctrl := &slowController{registered: make(chan Listener, 1)}
	started := make(chan *Broker, 1)
	go func() {
		b, err := Start(context.Background(), Config{ID: 0, ListenAddr: addr, DataDir: t.TempDir(), Controller: ctrl})
		if err != nil {
			t.Error(err)
		}
		started <- b
	}()
	l := <-ctrl.registered

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := wire.Dial(ctx, nil, addr, "early-client")
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	answered := make(chan error, 1)
	go func() {
		_, err := cl.Request(ctx, kmsg.NewPtrMetadataRequest())
		answered <- err
	}()
	select {
	case err := <-answered:
		t.Fatalf("answered before the first metadata image (err %v)", err)
	case <-time.After(300 * time.Millisecond):
	}

	l.OnImage(&meta.Image{Version: 1, Brokers: []meta.Broker{{ID: 0, Alive: true}}, Topics: map[string]*meta.Topic{}})
	b := <-started
	if b == nil {
		t.FailNow()
	}
	defer b.Close()
	select {
	case err := <-answered:
		if err != nil {
			t.Fatalf("after the first image: %v", err)
		}
	case <-ctx.Done():
		t.Fatal(errors.New("no answer after the first image was applied"))
	}
}
