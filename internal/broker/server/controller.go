package server

import (
	"context"
	"time"

	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
	"github.com/kafkaguard/kafkaguard/internal/broker/sasl"
	"github.com/kafkaguard/kafkaguard/internal/broker/wire"
)

// Controller is what a broker needs from the cluster's controller, as the broker reaches it: the
// bundled cluster gives each broker its own link to its in-process controller
// (internal/broker/cluster), which knows whose calls it carries, so no call names its caller.
type Controller interface {
	// Register announces a (re)started broker and subscribes it to metadata images: the
	// controller calls Listener.OnImage with every new image until the broker is fenced.
	Register(ctx context.Context, b meta.Broker, l Listener) error
	// Heartbeat keeps the broker's session alive.
	Heartbeat(ctx context.Context) error
	// CreateTopics creates topics (or only validates them) and returns one error per spec, nil on
	// success. Errors wrap kerr codes.
	CreateTopics(ctx context.Context, specs []TopicSpec, validateOnly bool) []error
	// DeleteTopics deletes topics by name, one error per name.
	DeleteTopics(ctx context.Context, names []string) []error
	// CreatePartitions grows a topic to count partitions.
	CreatePartitions(ctx context.Context, topic string, count int32, validateOnly bool) error
	// AlterISR changes a partition's ISR on behalf of its leader (the calling broker);
	// leaderEpoch and partitionEpoch must match the controller's (else the request is stale and
	// refused).
	AlterISR(ctx context.Context, topic string, partition, leaderEpoch, partitionEpoch int32, isr []int32) error
	// AllocateProducerID hands out a cluster-unique idempotent producer id.
	AllocateProducerID(ctx context.Context) (int64, error)
	// AlterScramCredentials creates, replaces or deletes SCRAM credentials in the cluster
	// metadata (AlterUserScramCredentials), one error per change, nil on success. Errors wrap
	// kerr codes (RESOURCE_NOT_FOUND for deleting a credential that does not exist).
	AlterScramCredentials(ctx context.Context, changes []ScramChange) []error
}

// ScramChange is one SCRAM credential to set or delete.
type ScramChange struct {
	User, Mechanism string
	// Delete removes the credential; otherwise Credential is set.
	Delete     bool
	Credential sasl.ScramCredential
}

// Listener receives metadata images from the controller.
type Listener interface {
	OnImage(img *meta.Image)
}

// TopicSpec is a topic to create.
type TopicSpec struct {
	Name              string
	Partitions        int32 // -1: the broker default
	ReplicationFactor int16 // -1: the broker default
	Assignment        map[int32][]int32
	Configs           map[string]string
}

// Dialer connects to other brokers (*net.Dialer is one).
type Dialer = wire.Dialer

// Clock is how a broker waits for time to pass: in its periodic work (heartbeats, ISR checks,
// high-watermark checkpoints, its replica fetchers' waits) and in its group coordinator's
// timers (session, join and rebalance timeouts).
type Clock interface {
	// After returns a channel that receives the time once d has passed.
	After(d time.Duration) <-chan time.Time
	// AfterFunc calls f in its own goroutine once d has passed, as time.AfterFunc does.
	AfterFunc(d time.Duration, f func()) *time.Timer
}

// realClock is the wall clock.
type realClock struct{}

func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

func (realClock) AfterFunc(d time.Duration, f func()) *time.Timer { return time.AfterFunc(d, f) }
