package group

import (
	"context"
	"encoding/binary"
	"errors"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Versions of the __consumer_offsets formats this package writes, the ones
// Kafka writes: key version 1 for offsets and 2 for group metadata (the key
// version is the record type), value version 3 for both, or offset value
// version 1 when the commit carries an expire timestamp.
const (
	offsetKeyVersion   = 1
	groupKeyVersion    = 2
	offsetValueVersion = 3
	groupValueVersion  = 3
)

func offsetCommitKey(group, topic string, partition int32) []byte {
	k := kmsg.NewOffsetCommitKey()
	k.Version = offsetKeyVersion
	k.Group = group
	k.Topic = topic
	k.Partition = partition
	return k.AppendTo(nil)
}

func offsetCommitRecord(group, topic string, partition int32, o committed) Record {
	v := kmsg.NewOffsetCommitValue()
	v.Version = offsetValueVersion
	if o.expireTimestamp >= 0 {
		v.Version = 1
		v.ExpireTimestamp = o.expireTimestamp
	}
	v.Offset = o.offset
	v.LeaderEpoch = o.leaderEpoch
	v.Metadata = o.metadata
	v.CommitTimestamp = o.commitTimestamp
	return Record{Key: offsetCommitKey(group, topic, partition), Value: v.AppendTo(nil)}
}

func offsetTombstone(group, topic string, partition int32) Record {
	return Record{Key: offsetCommitKey(group, topic, partition)}
}

func groupMetadataKey(group string) []byte {
	k := kmsg.NewGroupMetadataKey()
	k.Version = groupKeyVersion
	k.Group = group
	return k.AppendTo(nil)
}

func groupTombstone(group string) Record {
	return Record{Key: groupMetadataKey(group)}
}

// groupMetadataRecord encodes g's current membership with the given
// assignment (nil: each member's current assignment), as Kafka's
// newGroupMetadataRecord does.
func groupMetadataRecord(g *group, assignment map[string][]byte) Record {
	v := kmsg.NewGroupMetadataValue()
	v.Version = groupValueVersion
	v.ProtocolType = g.protocolType
	v.Generation = g.generation
	if g.protocol != "" {
		v.Protocol = kmsg.StringPtr(g.protocol)
	}
	if g.leader != "" {
		v.Leader = kmsg.StringPtr(g.leader)
	}
	v.CurrentStateTimestamp = g.stateTime.UnixMilli()
	for _, m := range g.orderedMembers() {
		vm := kmsg.NewGroupMetadataValueMember()
		vm.MemberID = m.id
		vm.InstanceID = m.instanceID
		vm.ClientID = m.clientID
		vm.ClientHost = m.clientHost
		vm.RebalanceTimeoutMillis = m.rebalanceTimeoutMs
		vm.SessionTimeoutMillis = m.sessionTimeoutMs
		vm.Subscription = nonNil(m.metadata(g.protocol))
		a, ok := assignment[m.id]
		if assignment == nil {
			a, ok = m.assignment, true
		}
		if !ok {
			a = nil
		}
		vm.Assignment = nonNil(a)
		v.Members = append(v.Members, vm)
	}
	return Record{Key: groupMetadataKey(g.id), Value: v.AppendTo(nil)}
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// replay applies one record of __consumer_offsets to groups, as Kafka's
// GroupCoordinatorShard.replay does for the classic-group and offset records.
// Records of other types (KIP-848, share groups) are skipped. It returns an
// error for a record it cannot decode; the caller logs and skips it.
func (sh *shard) replay(r Record) error {
	seq := sh.nextSeq()
	if r.Txn != nil && r.Txn.Marker {
		sh.endTxn(r.Txn.ProducerID, r.Txn.Commit)
		return nil
	}
	if len(r.Key) < 2 {
		return errors.New("group: record key too short")
	}
	switch version := int16(binary.BigEndian.Uint16(r.Key)); version {
	case 0, 1:
		var k kmsg.OffsetCommitKey
		if err := k.ReadFrom(r.Key); err != nil {
			return err
		}
		if r.Value == nil {
			if g := sh.groups[k.Group]; g != nil {
				g.deleteOffset(k.Topic, k.Partition)
			}
			sh.dropTxnOffset(k.Group, k.Topic, k.Partition)
			return nil
		}
		var v kmsg.OffsetCommitValue
		if err := v.ReadFrom(r.Value); err != nil {
			return err
		}
		leaderEpoch := int32(-1)
		if v.Version >= 3 {
			leaderEpoch = v.LeaderEpoch
		}
		expire := int64(-1)
		if v.Version == 1 {
			expire = v.ExpireTimestamp
		}
		g := sh.groups[k.Group]
		if g == nil {
			g = sh.newGroup(k.Group)
		}
		c := committed{
			offset:          v.Offset,
			leaderEpoch:     leaderEpoch,
			metadata:        v.Metadata,
			commitTimestamp: v.CommitTimestamp,
			expireTimestamp: expire,
			seq:             seq,
		}
		if r.Txn != nil {
			// Pending until its producer's marker, further in the log.
			sh.addTxnOffset(r.Txn.ProducerID, k.Group, k.Topic, k.Partition, c)
			return nil
		}
		g.setOffset(k.Topic, k.Partition, c)
		return nil
	case 2:
		var k kmsg.GroupMetadataKey
		if err := k.ReadFrom(r.Key); err != nil {
			return err
		}
		if r.Value == nil {
			if g := sh.groups[k.Group]; g != nil {
				if len(g.offsets) == 0 {
					delete(sh.groups, k.Group)
				} else {
					fresh := sh.newGroup(k.Group)
					fresh.offsets = g.offsets
				}
			}
			return nil
		}
		var v kmsg.GroupMetadataValue
		if err := v.ReadFrom(r.Value); err != nil {
			return err
		}
		old := sh.groups[k.Group]
		g := sh.newGroup(k.Group)
		if old != nil {
			g.offsets = old.offsets
		}
		g.protocolType = v.ProtocolType
		g.generation = v.Generation
		if v.Protocol != nil {
			g.protocol = *v.Protocol
		}
		if v.Leader != nil {
			g.leader = *v.Leader
		}
		if v.CurrentStateTimestamp >= 0 {
			g.stateTime = timeFromMillis(v.CurrentStateTimestamp)
		}
		for _, vm := range v.Members {
			rebalance := vm.RebalanceTimeoutMillis
			if v.Version < 1 || rebalance <= 0 {
				rebalance = vm.SessionTimeoutMillis
			}
			m := &member{
				id:                 vm.MemberID,
				instanceID:         vm.InstanceID,
				clientID:           vm.ClientID,
				clientHost:         vm.ClientHost,
				protocolType:       v.ProtocolType,
				protocols:          []kmsg.JoinGroupRequestProtocol{{Name: g.protocol, Metadata: slices.Clone(vm.Subscription)}},
				sessionTimeoutMs:   vm.SessionTimeoutMillis,
				rebalanceTimeoutMs: rebalance,
				assignment:         slices.Clone(vm.Assignment),
			}
			g.addLoadedMember(m)
		}
		if len(g.members) > 0 {
			g.state = stateStable
		}
		if g.leader != "" && g.members[g.leader] == nil {
			g.leader = ""
			if ms := g.orderedMembers(); len(ms) > 0 {
				g.leader = ms[0].id
			}
		}
		return nil
	default:
		return nil
	}
}

// AppendErrorCode maps a Store.Append error to the code the client gets, as
// Kafka's CoordinatorOperationExceptionHelper maps log-append errors.
func AppendErrorCode(err error) int16 {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrNotLeader):
		return kerr.NotCoordinator.Code
	case errors.Is(err, ErrUnavailable),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, context.Canceled):
		return kerr.CoordinatorNotAvailable.Code
	}
	var ke *kerr.Error
	if !errors.As(err, &ke) {
		return kerr.UnknownServerError.Code
	}
	switch ke {
	case kerr.NotLeaderForPartition, kerr.KafkaStorageError:
		return kerr.NotCoordinator.Code
	case kerr.UnknownTopicOrPartition, kerr.NotEnoughReplicas,
		kerr.NotEnoughReplicasAfterAppend, kerr.RequestTimedOut:
		return kerr.CoordinatorNotAvailable.Code
	case kerr.MessageTooLarge, kerr.RecordListTooLarge, kerr.InvalidFetchSize:
		return kerr.UnknownServerError.Code
	}
	return ke.Code
}
