package server

import (
	"context"
	"errors"

	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
)

// Controller is what a broker needs from the cluster's controller. The bundled cluster runs one
// in-process controller shared by all brokers (internal/broker/cluster implements it); every call
// names the calling broker, so that a broker cut off by fault injection can be refused as if the
// network had dropped the request.
type Controller interface {
	// Register announces a (re)started broker and subscribes it to metadata images: the
	// controller calls Listener.OnImage with every new image until the broker is fenced.
	Register(ctx context.Context, b meta.Broker, l Listener) error
	// Heartbeat keeps the broker's session alive.
	Heartbeat(ctx context.Context, id int32) error
	// CreateTopics creates topics (or only validates them) and returns one error per spec, nil on
	// success. Errors wrap kerr codes.
	CreateTopics(ctx context.Context, from int32, specs []TopicSpec, validateOnly bool) []error
	// DeleteTopics deletes topics by name, one error per name.
	DeleteTopics(ctx context.Context, from int32, names []string) []error
	// CreatePartitions grows a topic to count partitions.
	CreatePartitions(ctx context.Context, from int32, topic string, count int32, validateOnly bool) error
	// AlterISR changes a partition's ISR on behalf of its leader; leaderEpoch and partitionEpoch
	// must match the controller's (else the request is stale and refused).
	AlterISR(ctx context.Context, from int32, topic string, partition, leaderEpoch, partitionEpoch int32, isr []int32) error
	// AllocateProducerID hands out a cluster-unique idempotent producer id.
	AllocateProducerID(ctx context.Context, from int32) (int64, error)
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

// ErrUnreachable is returned by controller calls from a broker that fault injection isolated.
var ErrUnreachable = errors.New("server: controller unreachable from this broker")
