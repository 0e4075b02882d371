// Package meta holds the cluster metadata the bundled broker's controller owns and every broker
// serves from: brokers, topics, and each partition's replicas, leader, leader epoch and ISR.
//
// An Image is an immutable snapshot. The controller publishes a new Image on every change; brokers
// keep the latest one they received and answer Metadata requests from it, so an isolated broker
// keeps serving its stale view, as a real Kafka broker cut off from its controller does.
package meta

import (
	"crypto/rand"
	"encoding/hex"
	"maps"
	"slices"

	"github.com/kafkaguard/kafkaguard/internal/broker/sasl"
)

// NoLeader is the leader id of an offline partition.
const NoLeader int32 = -1

// OffsetsTopic is the internal topic that stores consumer-group offsets and metadata.
const OffsetsTopic = "__consumer_offsets"

// TransactionStateTopic is the internal topic that stores the transaction coordinator's state.
const TransactionStateTopic = "__transaction_state"

// IsInternal reports whether name is one of the internal topics only the brokers write.
func IsInternal(name string) bool { return name == OffsetsTopic || name == TransactionStateTopic }

// TopicID is a topic's 16-byte UUID, as carried by Metadata and Fetch v13+.
type TopicID [16]byte

// NewTopicID returns a random, non-zero topic id.
func NewTopicID() TopicID {
	var id TopicID
	for id == (TopicID{}) {
		_, _ = rand.Read(id[:])
	}
	return id
}

// String returns the id in hex.
func (id TopicID) String() string { return hex.EncodeToString(id[:]) }

// MarshalText encodes the id as hex.
func (id TopicID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText decodes a hex id.
func (id *TopicID) UnmarshalText(b []byte) error {
	_, err := hex.Decode(id[:], b)
	return err
}

// Broker is one broker of the cluster as the controller knows it.
type Broker struct {
	ID    int32  `json:"id"`
	Host  string `json:"host"`
	Port  int32  `json:"port"`
	Alive bool   `json:"alive"`
}

// Partition is the replication state of one partition.
type Partition struct {
	Replicas    []int32 `json:"replicas"`
	ISR         []int32 `json:"isr"`
	Leader      int32   `json:"leader"`
	LeaderEpoch int32   `json:"leader_epoch"`
	// Epoch counts every change of this partition's state (leader or ISR), like Kafka's
	// partition epoch; a leader's ISR change request must name the current one.
	Epoch int32 `json:"partition_epoch"`
}

// Clone returns a deep copy.
func (p Partition) Clone() Partition {
	p.Replicas = slices.Clone(p.Replicas)
	p.ISR = slices.Clone(p.ISR)
	return p
}

// InISR reports whether broker id is in the ISR.
func (p Partition) InISR(id int32) bool { return slices.Contains(p.ISR, id) }

// IsReplica reports whether broker id holds a replica.
func (p Partition) IsReplica(id int32) bool { return slices.Contains(p.Replicas, id) }

// Topic is a topic with its configs and partitions.
type Topic struct {
	Name       string            `json:"name"`
	ID         TopicID           `json:"id"`
	Configs    map[string]string `json:"configs,omitempty"`
	Partitions []Partition       `json:"partitions"`
	Internal   bool              `json:"internal,omitempty"`
}

// Clone returns a deep copy.
func (t *Topic) Clone() *Topic {
	c := *t
	c.Configs = make(map[string]string, len(t.Configs))
	for k, v := range t.Configs {
		c.Configs[k] = v
	}
	c.Partitions = make([]Partition, len(t.Partitions))
	for i, p := range t.Partitions {
		c.Partitions[i] = p.Clone()
	}
	return &c
}

// Image is an immutable snapshot of cluster metadata. Version grows with every change.
type Image struct {
	Version      int64             `json:"version"`
	ClusterID    string            `json:"cluster_id"`
	ControllerID int32             `json:"controller_id"`
	Brokers      []Broker          `json:"brokers"`
	Topics       map[string]*Topic `json:"topics"`
	// NextProducerID is the next idempotent producer id the controller hands out.
	NextProducerID int64 `json:"next_producer_id"`
	// Scram holds the SCRAM users created with AlterUserScramCredentials: user -> mechanism ->
	// credential (never a password). The maps are not changed once published.
	Scram map[string]map[string]sasl.ScramCredential `json:"scram,omitempty"`

	byID map[TopicID]*Topic // built by Seal
}

// Seal prepares a finished image for publication: it indexes topics by id, so TopicByID (on the
// produce and fetch paths of v13+ clients) is a map lookup. The image must not change afterwards.
func (img *Image) Seal() {
	img.byID = make(map[TopicID]*Topic, len(img.Topics))
	for _, t := range img.Topics {
		img.byID[t.ID] = t
	}
}

// Topic returns the named topic, or nil.
func (img *Image) Topic(name string) *Topic {
	if img == nil {
		return nil
	}
	return img.Topics[name]
}

// TopicByID returns the topic with the id, or nil.
func (img *Image) TopicByID(id TopicID) *Topic {
	if img == nil {
		return nil
	}
	if img.byID != nil {
		return img.byID[id]
	}
	for _, t := range img.Topics { // an image that was never sealed (built by hand in a test)
		if t.ID == id {
			return t
		}
	}
	return nil
}

// Partition returns a topic's partition and whether it exists.
func (img *Image) Partition(topic string, p int32) (Partition, bool) {
	t := img.Topic(topic)
	if t == nil || p < 0 || int(p) >= len(t.Partitions) {
		return Partition{}, false
	}
	return t.Partitions[p], true
}

// Broker returns the broker with the id and whether it is known.
func (img *Image) Broker(id int32) (Broker, bool) {
	if img == nil {
		return Broker{}, false
	}
	for _, b := range img.Brokers {
		if b.ID == id {
			return b, true
		}
	}
	return Broker{}, false
}

// Clone returns a deep copy, for the controller to change and publish.
func (img *Image) Clone() *Image {
	c := *img
	c.byID = nil // the clone is about to change; Seal it again when done
	c.Brokers = slices.Clone(img.Brokers)
	c.Topics = make(map[string]*Topic, len(img.Topics))
	for k, t := range img.Topics {
		c.Topics[k] = t.Clone()
	}
	if img.Scram != nil {
		c.Scram = make(map[string]map[string]sasl.ScramCredential, len(img.Scram))
		for user, creds := range img.Scram {
			c.Scram[user] = maps.Clone(creds)
		}
	}
	return &c
}

// ScramCredential returns user's credential for a SCRAM mechanism, if one was created.
func (img *Image) ScramCredential(mechanism, user string) (sasl.ScramCredential, bool) {
	if img == nil {
		return sasl.ScramCredential{}, false
	}
	c, ok := img.Scram[user][mechanism]
	return c, ok
}
