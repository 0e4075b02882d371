package server

import (
	"encoding/binary"
	"hash/crc32"
	"log/slog"
	"slices"
	"testing"

	"github.com/kafkaguard/kafkaguard/internal/broker/group"
	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
	"github.com/kafkaguard/kafkaguard/internal/broker/partition"
	"github.com/kafkaguard/kafkaguard/internal/broker/records"
)

func TestReplayOffsetsSkipsAnUndecodableBatchAndReadsThePartitionToItsEnd(t *testing.T) {
	t.Parallel()
	r, err := partition.Open(t.TempDir(), partition.Config{BrokerID: 0, Topic: meta.OffsetsTopic, MinISR: 1, MaxMessageBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.Apply(meta.Partition{Replicas: []int32{0}, ISR: []int32{0}, Leader: 0, LeaderEpoch: 1, Epoch: 1})

	batch := func(keys ...string) []byte {
		var rs []records.Record
		for _, k := range keys {
			rs = append(rs, records.Record{Key: []byte(k), Value: []byte("v-" + k)})
		}
		return records.Build(rs, 1, records.NoProducer)
	}
	// A batch whose attributes claim gzip: a producer's would be refused (it does not
	// decompress), but the log itself stores it (as a follower stores what its leader wrote), and
	// it is not decodable as the coordinator's own records.
	damaged := batch("lost")
	damaged[22] |= 1
	binary.BigEndian.PutUint32(damaged[17:], crc32.Checksum(damaged[21:], crc32.MakeTable(crc32.Castagnoli)))
	if _, err := r.Append(t.Context(), batch("a", "b"), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Log().AppendLeader(damaged, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Append(t.Context(), batch("c"), 1); err != nil {
		t.Fatal(err)
	}

	b := &Broker{lg: slog.New(slog.DiscardHandler)}
	var keys []string
	if err := b.replayOffsets(meta.OffsetsTopic, 0, r)(func(rec group.Record) bool {
		keys = append(keys, string(rec.Key))
		return true
	}); err != nil {
		t.Fatalf("replay: %v", err)
	}
	if !slices.Equal(keys, []string{"a", "b", "c"}) {
		t.Fatalf("replayed %v, want [a b c]: the damaged batch skipped, the one after it read", keys)
	}
}
