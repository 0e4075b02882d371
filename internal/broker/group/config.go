package group

import (
	"context"
	"errors"
	"time"
	"unicode/utf16"
)

// Config tunes a [Coordinator]. The zero value of each field selects the
// default shown in its comment.
type Config struct {
	// MinSessionTimeout is the smallest session timeout a member may ask for
	// (Kafka's group.min.session.timeout.ms). Default 6s.
	MinSessionTimeout time.Duration
	// MaxSessionTimeout is the largest session timeout a member may ask for
	// (Kafka's group.max.session.timeout.ms). Default 30m.
	MaxSessionTimeout time.Duration
	// InitialRebalanceDelay is how long the first rebalance of an empty group
	// waits for more members (Kafka's group.initial.rebalance.delay.ms).
	// Default 0 here; Kafka's is 3s. A negative value also means 0.
	InitialRebalanceDelay time.Duration
	// OffsetsPartitions is the number of partitions of __consumer_offsets
	// (Kafka's offsets.topic.num.partitions). Default 4.
	OffsetsPartitions int32
	// Now returns the current time, for tests. Default time.Now.
	Now func() time.Time
	// Clock runs the coordinator's timers (session, join, rebalance and
	// pending-member timeouts). Default: the wall clock. A broker that can
	// be frozen passes one whose timers wait until it thaws.
	Clock Clock

	// NewMemberJoinTimeout bounds how long a new member may wait in its first
	// JoinGroup before it is dropped (Kafka's fixed 5 minutes). Default 5m.
	NewMemberJoinTimeout time.Duration
	// MaxGroupSize is the most members a group may have (Kafka's
	// group.max.size). Default 0: no limit.
	MaxGroupSize int
	// OffsetMetadataMaxBytes is the longest metadata string a commit may
	// carry (Kafka's offset.metadata.max.bytes, counted like Java's
	// String.length). Default 4096.
	OffsetMetadataMaxBytes int
	// CommitTimeout bounds each Store.Append (Kafka's
	// offsets.commit.timeout.ms). Default 5s.
	CommitTimeout time.Duration
}

func (cfg Config) withDefaults() Config {
	if cfg.MinSessionTimeout <= 0 {
		cfg.MinSessionTimeout = 6 * time.Second
	}
	if cfg.MaxSessionTimeout <= 0 {
		cfg.MaxSessionTimeout = 30 * time.Minute
	}
	if cfg.InitialRebalanceDelay < 0 {
		cfg.InitialRebalanceDelay = 0
	}
	if cfg.OffsetsPartitions <= 0 {
		cfg.OffsetsPartitions = 4
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Clock == nil {
		cfg.Clock = wallClock{}
	}
	if cfg.NewMemberJoinTimeout <= 0 {
		cfg.NewMemberJoinTimeout = 5 * time.Minute
	}
	if cfg.OffsetMetadataMaxBytes <= 0 {
		cfg.OffsetMetadataMaxBytes = 4096
	}
	if cfg.CommitTimeout <= 0 {
		cfg.CommitTimeout = 5 * time.Second
	}
	return cfg
}

// Clock runs timers. time.AfterFunc is the model: AfterFunc calls f in its own
// goroutine once d has passed, and Stop on the returned timer prevents that
// call if it has not started (f must cope with running after a Stop that
// came too late, as with time.AfterFunc).
type Clock interface {
	AfterFunc(d time.Duration, f func()) *time.Timer
}

// wallClock is the Clock of time.AfterFunc.
type wallClock struct{}

func (wallClock) AfterFunc(d time.Duration, f func()) *time.Timer { return time.AfterFunc(d, f) }

// Record is one record of __consumer_offsets. Key and Value are encoded in
// Kafka's formats (see the package doc); a nil Value is a tombstone.
type Record struct {
	Key, Value []byte
	// Txn is nil for the coordinator's own records. Otherwise the record
	// belongs to a producer's transaction: an offset commit of a
	// TxnOffsetCommit, pending until the transaction ends, or (Txn.Marker)
	// the transaction marker that ends it on this partition.
	Txn *Txn
}

// Txn says how a [Record] belongs to a transaction. A Store appends the
// offset commits of one producer as Kafka's group coordinator does: a
// transactional batch of the producer id and epoch, with no sequence (the
// partition checks only the epoch); a marker as the control batch a
// partition leader writes (WriteTxnMarkers). A Replay sets it from the batch
// each record was read from.
type Txn struct {
	ProducerID    int64
	ProducerEpoch int16
	// Marker: the record is a COMMIT (Commit) or ABORT marker, written with
	// CoordinatorEpoch.
	Marker, Commit   bool
	CoordinatorEpoch int32
}

// Store durably persists the coordinator's records in one partition of
// __consumer_offsets. The broker implements it by appending a record batch
// with acks=all and waiting for the high watermark to pass it.
//
// Append returns nil only once every record is durable. An error fails the
// operation that produced the records; the client gets a code derived from it
// (see [ErrNotLeader] and [ErrUnavailable]). Append must honour ctx, which
// carries the coordinator's commit timeout and is cancelled when the
// partition is unloaded. It is never called concurrently for one partition.
// The records of one Append are either all without Txn, or all the offset
// commits of one producer's transaction, or one marker.
type Store interface {
	Append(ctx context.Context, records []Record) error
}

// Errors a Store may return (wrapped or not) to choose the code the client
// gets. Store errors are also matched against kerr errors the way Kafka maps
// log-append errors: kerr.NotLeaderForPartition and kerr.KafkaStorageError
// give NOT_COORDINATOR; kerr.NotEnoughReplicas,
// kerr.NotEnoughReplicasAfterAppend, kerr.RequestTimedOut,
// kerr.UnknownTopicOrPartition, context.DeadlineExceeded and
// context.Canceled give COORDINATOR_NOT_AVAILABLE; kerr.MessageTooLarge,
// kerr.RecordListTooLarge and any other error give UNKNOWN_SERVER_ERROR;
// another kerr error is passed through.
var (
	// ErrNotLeader means this broker no longer leads the offsets partition.
	// Clients get NOT_COORDINATOR and look the coordinator up again.
	ErrNotLeader = errors.New("group: not the leader of the offsets partition")
	// ErrUnavailable means the records could not be made durable now (too
	// few in-sync replicas, timed out waiting for the high watermark).
	// Clients get COORDINATOR_NOT_AVAILABLE and retry.
	ErrUnavailable = errors.New("group: offsets partition unavailable")
)

// Errors returned by Load.
var (
	// ErrClosed is returned by Load after Close.
	ErrClosed = errors.New("group: coordinator closed")
	// ErrBadPartition is returned by Load for a partition outside
	// [0, Config.OffsetsPartitions).
	ErrBadPartition = errors.New("group: offsets partition out of range")
)

// PartitionFor returns the partition of __consumer_offsets that holds
// groupID, as Kafka computes it: Utils.abs(groupID.hashCode()) % partitions,
// with Java's String.hashCode over UTF-16 code units. partitions <= 0 gives 0.
func PartitionFor(groupID string, partitions int32) int32 {
	if partitions <= 0 {
		return 0
	}
	var h int32
	for _, r := range groupID {
		if r >= 0x10000 {
			r1, r2 := utf16.EncodeRune(r)
			h = 31*h + r1
			h = 31*h + r2
			continue
		}
		h = 31*h + r
	}
	if h == -1<<31 {
		h = 0
	} else if h < 0 {
		h = -h
	}
	return h % partitions
}

// javaLength is the length of s as Java's String.length counts it: UTF-16
// code units.
func javaLength(s string) int {
	n := 0
	for _, r := range s {
		if r >= 0x10000 && r <= 0x10FFFF {
			n += 2
		} else {
			n++
		}
	}
	return n
}

// API keys served by this package.
const (
	keyOffsetCommit    int16 = 8
	keyOffsetFetch     int16 = 9
	keyJoinGroup       int16 = 11
	keyHeartbeat       int16 = 12
	keyLeaveGroup      int16 = 13
	keySyncGroup       int16 = 14
	keyDescribeGroups  int16 = 15
	keyListGroups      int16 = 16
	keyDeleteGroups    int16 = 42
	keyOffsetDelete    int16 = 47
	keyTxnOffsetCommit int16 = 28
)

// Versions reports, per API key this package serves, the [min, max] versions
// it implements fully, for the broker's ApiVersions answer. The minimums are
// Kafka 4.x's (KIP-896 removed JoinGroup v0-1, OffsetCommit v0-1 and
// OffsetFetch v0); the handlers still answer older versions sensibly.
func Versions() map[int16][2]int16 {
	return map[int16][2]int16{
		keyOffsetCommit:   {2, 9},
		keyOffsetFetch:    {1, 9},
		keyJoinGroup:      {2, 9},
		keyHeartbeat:      {0, 4},
		keyLeaveGroup:     {0, 5},
		keySyncGroup:      {0, 5},
		keyDescribeGroups: {0, 6},
		keyListGroups:     {0, 5},
		keyDeleteGroups:   {0, 3},
		keyOffsetDelete:   {0, 0},
		// TxnOffsetCommit v5 is transaction.version 2 (KIP-890 part 2), v6
		// names topics by id: neither is implemented.
		keyTxnOffsetCommit: {0, 4},
	}
}
