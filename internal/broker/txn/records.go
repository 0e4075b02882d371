package txn

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/group"
	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
)

// TopicName is Kafka's internal topic of transaction state.
const TopicName = meta.TransactionStateTopic

// OffsetsTopic is the topic of group offsets, whose partitions join a
// transaction through AddOffsetsToTxn.
const OffsetsTopic = meta.OffsetsTopic

// Versions of the __transaction_state formats written: key 0, and value 0,
// the classic flow's (Kafka writes value 1 only with transaction.version 2).
const (
	keyVersion   = 0
	valueVersion = 0
)

// ErrBadRecord is returned (wrapped) by [Decode] for a record that is not a
// transaction state record it can read.
var ErrBadRecord = errors.New("txn: undecodable __transaction_state record")

// PartitionFor returns the partition of __transaction_state that holds
// transactionalID: Kafka's partitionFor, the same hash as groups use for
// __consumer_offsets.
func PartitionFor(transactionalID string, partitions int32) int32 {
	return group.PartitionFor(transactionalID, partitions)
}

// Encode returns the key and value of the record that persists m, in Kafka's
// TransactionLogKey and TransactionLogValue formats. Only Empty has no
// partitions in the value (Kafka writes a null list).
func Encode(m Metadata) (key, value []byte) {
	k := kmsg.NewTxnMetadataKey()
	k.Version = keyVersion
	k.TransactionalID = m.TransactionalID
	v := kmsg.NewTxnMetadataValue()
	v.Version = valueVersion
	v.ProducerID, v.ProducerEpoch, v.TimeoutMillis = m.ProducerID, m.ProducerEpoch, m.TimeoutMillis
	v.State = kmsg.TransactionState(m.State)
	v.StartTimestamp, v.LastUpdateTimestamp = m.StartTimestamp, m.LastUpdateTimestamp
	for _, p := range m.Partitions {
		if n := len(v.Topics); n > 0 && v.Topics[n-1].Topic == p.Topic {
			v.Topics[n-1].Partitions = append(v.Topics[n-1].Partitions, p.Partition)
			continue
		}
		t := kmsg.NewTxnMetadataValueTopic()
		t.Topic, t.Partitions = p.Topic, []int32{p.Partition}
		v.Topics = append(v.Topics, t)
	}
	return k.AppendTo(nil), v.AppendTo(nil)
}

// Tombstone returns the key of the record that deletes transactionalID (its
// value is nil).
func Tombstone(transactionalID string) []byte {
	k := kmsg.NewTxnMetadataKey()
	k.Version = keyVersion
	k.TransactionalID = transactionalID
	return k.AppendTo(nil)
}

// Decode reads a __transaction_state record. deleted is true for a tombstone
// (a nil value), and m then carries only the transactional id. Value versions
// 0 and 1 are read; LastProducerID comes from version 1's previous producer
// id, LastProducerEpoch is never persisted. Any other input is
// [ErrBadRecord].
func Decode(key, value []byte) (m Metadata, deleted bool, err error) {
	var k kmsg.TxnMetadataKey
	if err := k.ReadFrom(key); err != nil || k.Version != keyVersion {
		return m, false, fmt.Errorf("%w: key version %d: %v", ErrBadRecord, k.Version, err)
	}
	if value == nil {
		return Metadata{TransactionalID: k.TransactionalID}, true, nil
	}
	var v kmsg.TxnMetadataValue
	if err := v.ReadFrom(value); err != nil || v.Version < 0 || v.Version > 1 {
		return m, false, fmt.Errorf("%w: value of %q (version %d): %v", ErrBadRecord, k.TransactionalID, v.Version, err)
	}
	if s := State(v.State); !s.Valid() || s == PrepareEpochFence {
		return m, false, fmt.Errorf("%w: %q in state %d", ErrBadRecord, k.TransactionalID, v.State)
	}
	m = Metadata{
		TransactionalID:     k.TransactionalID,
		ProducerID:          v.ProducerID,
		LastProducerID:      v.PreviousProducerID,
		ProducerEpoch:       v.ProducerEpoch,
		LastProducerEpoch:   NoProducerEpoch,
		TimeoutMillis:       v.TimeoutMillis,
		State:               State(v.State),
		StartTimestamp:      v.StartTimestamp,
		LastUpdateTimestamp: v.LastUpdateTimestamp,
	}
	if v.Version == 0 {
		m.LastProducerID = NoProducerID
	}
	var parts []Partition
	for _, t := range v.Topics {
		for _, p := range t.Partitions {
			parts = append(parts, Partition{Topic: t.Topic, Partition: p})
		}
	}
	m.Partitions = merge(nil, parts)
	if len(m.Partitions) == 0 {
		m.Partitions = nil
	}
	return m, false, nil
}
