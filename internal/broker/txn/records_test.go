package txn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
)

func TestRecordsRoundTrip(t *testing.T) {
	for _, m := range []Metadata{
		New("fresh", 3, 1000, 5),
		{TransactionalID: "open", ProducerID: 9, LastProducerID: NoProducerID, ProducerEpoch: 4, LastProducerEpoch: NoProducerEpoch, TimeoutMillis: 60000, State: Ongoing,
			Partitions: []Partition{{"a", 0}, {"a", 3}, {"b", 1}}, StartTimestamp: 100, LastUpdateTimestamp: 200},
		{TransactionalID: "done", ProducerID: 9, LastProducerID: NoProducerID, ProducerEpoch: 4, LastProducerEpoch: NoProducerEpoch, TimeoutMillis: 60000, State: CompleteCommit,
			StartTimestamp: 100, LastUpdateTimestamp: 300},
	} {
		key, value := Encode(m)
		got, deleted, err := Decode(key, value)
		if err != nil || deleted {
			t.Fatalf("Decode(Encode(%s)): deleted %v, %v", m.TransactionalID, deleted, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("round trip of %s:\n got %+v\nwant %+v", m.TransactionalID, got, m)
		}
	}
	got, deleted, err := Decode(Tombstone("gone"), nil)
	if err != nil || !deleted || got.TransactionalID != "gone" {
		t.Fatalf("tombstone: %+v, deleted %v, %v", got, deleted, err)
	}
}

// TestRecordsUseKafkasLayout pins the bytes against Kafka's
// TransactionLogKey v0 and TransactionLogValue v0 schemas.
func TestRecordsUseKafkasLayout(t *testing.T) {
	m := Metadata{TransactionalID: "tx", ProducerID: 1, ProducerEpoch: 2, TimeoutMillis: 3, State: PrepareCommit,
		Partitions: []Partition{{"t", 5}}, StartTimestamp: 6, LastUpdateTimestamp: 7}
	key, value := Encode(m)
	if want := []byte{0, 0, 0, 2, 't', 'x'}; !bytes.Equal(key, want) {
		t.Errorf("key % x, want % x", key, want)
	}
	var w []byte
	w = binary.BigEndian.AppendUint16(w, 0) // value version
	w = binary.BigEndian.AppendUint64(w, 1) // ProducerId
	w = binary.BigEndian.AppendUint16(w, 2) // ProducerEpoch
	w = binary.BigEndian.AppendUint32(w, 3) // TransactionTimeoutMs
	w = append(w, 2)                        // TransactionStatus: PrepareCommit
	w = binary.BigEndian.AppendUint32(w, 1) // one topic
	w = append(w, 0, 1, 't')                // Topic
	w = binary.BigEndian.AppendUint32(w, 1) // one partition
	w = binary.BigEndian.AppendUint32(w, 5) // 5
	w = binary.BigEndian.AppendUint64(w, 7) // TransactionLastUpdateTimestampMs
	w = binary.BigEndian.AppendUint64(w, 6) // TransactionStartTimestampMs
	if !bytes.Equal(value, w) {
		t.Errorf("value\n % x\nwant\n % x", value, w)
	}
}

func TestDecodeRefusesWhatIsNotATransactionRecord(t *testing.T) {
	key, value := Encode(New("tx", 1, 1000, 0))
	fence := New("tx", 1, 1000, 0)
	fence.State = PrepareEpochFence
	_, fenceValue := Encode(fence)
	for name, kv := range map[string][2][]byte{
		"empty key":               {nil, value},
		"key version 1":           {append([]byte{0, 1}, key[2:]...), value},
		"truncated value":         {key, value[:len(value)-1]},
		"value version 2":         {key, append([]byte{0, 2}, value[2:]...)},
		"PrepareEpochFence state": {key, fenceValue},
	} {
		if _, _, err := Decode(kv[0], kv[1]); !errors.Is(err, ErrBadRecord) {
			t.Errorf("%s: %v, want ErrBadRecord", name, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	key, value := Encode(Metadata{TransactionalID: "tx", State: Ongoing, Partitions: []Partition{{"t", 1}}})
	f.Add(key, value)
	f.Add(key, []byte(nil))
	f.Fuzz(func(t *testing.T, key, value []byte) {
		m, deleted, err := Decode(key, value)
		if err != nil || deleted {
			return
		}
		// Whatever decodes re-encodes to a record that decodes the same, but
		// for the previous producer id, which value version 0 does not carry.
		m.LastProducerID = NoProducerID
		k2, v2 := Encode(m)
		m2, _, err := Decode(k2, v2)
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("re-decoding %+v: %+v, %v", m, m2, err)
		}
	})
}
