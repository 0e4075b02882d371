package partitioner

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
)

// change is one call of a OnPartitionCountChange hook.
type change struct {
	topic    string
	old, new int
}

type recorder struct{ changes []change }

func (r *recorder) option() Opt {
	return OnPartitionCountChange(func(topic string, old, new int) {
		r.changes = append(r.changes, change{topic, old, new})
	})
}

func keyN(i int) []byte { return fmt.Appendf(nil, "key-%d", i) }

// movingKey returns a key whose partition differs between n partitions and
// m partitions.
func movingKey(t *testing.T, h Hasher, n, m int) []byte {
	t.Helper()
	for i := range 1000 {
		a, _ := ForKey(h, keyN(i), n)
		b, _ := ForKey(h, keyN(i), m)
		if a != b {
			return keyN(i)
		}
	}
	t.Fatalf("no key moves between %d and %d partitions", n, m)
	return nil
}

func TestKgoNilKeyStaysOnOnePartitionUntilNewBatch(t *testing.T) {
	for _, h := range []Hasher{HashMurmur2, HashFNV1a, HashCRC32} {
		t.Run(h.String(), func(t *testing.T) {
			tp := Kgo(h, quiet()).ForTopic("t")
			nb, ok := tp.(kgo.TopicPartitionerOnNewBatch)
			if !ok {
				t.Fatal("Kgo topic partitioner does not implement kgo.TopicPartitionerOnNewBatch")
			}
			r := &kgo.Record{}
			if tp.RequiresConsistency(r) {
				t.Error("a record without a key requires consistency")
			}
			if !tp.RequiresConsistency(&kgo.Record{Key: []byte{}}) {
				t.Error("a record with an empty, non-nil key does not require consistency")
			}
			prev := -1
			for batch := range 20 {
				first := tp.Partition(r, 10)
				for range 500 {
					if p := tp.Partition(r, 10); p != first {
						t.Fatalf("batch %d: nil key moved from partition %d to %d without a new batch", batch, first, p)
					}
				}
				if first == prev {
					t.Fatalf("batch %d: stayed on partition %d after a new batch", batch, first)
				}
				prev = first
				nb.OnNewBatch()
			}
		})
	}
}

func TestKgoNilKeyStickyPartitionFollowsShrinkingWritablePartitions(t *testing.T) {
	tp := Kgo(HashMurmur2, quiet()).ForTopic("t")
	r := &kgo.Record{}
	for range 200 {
		tp.(kgo.TopicPartitionerOnNewBatch).OnNewBatch()
		tp.Partition(r, 10)
		if p := tp.Partition(r, 2); p < 0 || p >= 2 {
			t.Fatalf("Partition with 2 writable partitions = %d", p)
		}
	}
}

func TestStickyRecordsSwitchesAfterNRecords(t *testing.T) {
	const n = 8
	kgoPick := func(opts ...Opt) func() int {
		tp := Kgo(HashCRC32, append(opts, quiet())...).ForTopic("t")
		return func() int { return tp.Partition(&kgo.Record{}, n) }
	}
	saramaPick := func(opts ...Opt) func() int {
		sp := Sarama(HashFNV1a, append(opts, quiet())...)("t")
		return func() int {
			p, err := sp.Partition(&sarama.ProducerMessage{Topic: "t"}, n)
			if err != nil {
				return -1 // fails the checks below
			}
			return int(p)
		}
	}
	tests := []struct {
		name  string
		pick  func() int
		limit int
	}{
		{"kgo with StickyRecords(3)", kgoPick(StickyRecords(3)), 3},
		{"sarama default", saramaPick(), defaultSaramaStickyRecords},
		{"sarama with StickyRecords(5)", saramaPick(StickyRecords(5)), 5},
		{"sarama with StickyRecords(0) means 1", saramaPick(StickyRecords(0)), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prev := -1
			for run := range 10 {
				first := tt.pick()
				if first == prev {
					t.Fatalf("run %d: stayed on partition %d after %d records", run, first, tt.limit)
				}
				for i := 1; i < tt.limit; i++ {
					if p := tt.pick(); p != first {
						t.Fatalf("run %d: moved from %d to %d after %d of %d records", run, first, p, i, tt.limit)
					}
				}
				prev = first
			}
		})
	}
}

func TestSaramaNilKeyDoesNotRequireConsistency(t *testing.T) {
	p := Sarama(HashMurmur2, quiet())("t")
	dp, ok := p.(sarama.DynamicConsistencyPartitioner)
	if !ok {
		t.Fatal("Sarama partitioner does not implement sarama.DynamicConsistencyPartitioner")
	}
	if dp.MessageRequiresConsistency(&sarama.ProducerMessage{}) {
		t.Error("a message without a key requires consistency")
	}
	if !dp.MessageRequiresConsistency(&sarama.ProducerMessage{Key: sarama.StringEncoder("")}) {
		t.Error("a message with an empty key does not require consistency")
	}
	if !p.RequiresConsistency() {
		t.Error("RequiresConsistency = false, want true (keyed messages need it)")
	}
}

func TestKgoFollowsNewPartitionCountAndReportsIt(t *testing.T) {
	var rec recorder
	var logs bytes.Buffer
	tp := Kgo(HashMurmur2, rec.option(), Logger(slog.New(slog.NewTextHandler(&logs, nil)))).ForTopic("orders")
	key := movingKey(t, HashMurmur2, 6, 8)

	before := tp.Partition(&kgo.Record{Key: key}, 6)
	tp.Partition(&kgo.Record{Key: key}, 6)
	if len(rec.changes) != 0 {
		t.Fatalf("hook called without a change: %v", rec.changes)
	}
	after := tp.Partition(&kgo.Record{Key: key}, 8)
	tp.Partition(&kgo.Record{Key: key}, 8)

	want8, _ := ForKey(HashMurmur2, key, 8)
	if after != want8 || after == before {
		t.Errorf("after growing to 8 partitions the key went to %d (was %d), want %d", after, before, want8)
	}
	if want := []change{{"orders", 6, 8}}; fmt.Sprint(rec.changes) != fmt.Sprint(want) {
		t.Errorf("hook calls = %v, want %v", rec.changes, want)
	}
	for _, s := range []string{"level=WARN", "topic=orders", "old=6", "new=8"} {
		if !strings.Contains(logs.String(), s) {
			t.Errorf("log %q lacks %q", logs.String(), s)
		}
	}

	tp.Partition(&kgo.Record{Key: key}, 12)
	if want := []change{{"orders", 6, 8}, {"orders", 8, 12}}; fmt.Sprint(rec.changes) != fmt.Sprint(want) {
		t.Errorf("hook calls = %v, want %v", rec.changes, want)
	}
}

func TestKgoReportsChangeWithoutHookThroughDefaultLogger(t *testing.T) {
	var logs bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	defer slog.SetDefault(prev)

	tp := Kgo(HashMurmur2).ForTopic("t")
	tp.Partition(&kgo.Record{Key: []byte("k")}, 3)
	tp.Partition(&kgo.Record{Key: []byte("k")}, 4)
	if !strings.Contains(logs.String(), "partition count changed") || !strings.Contains(logs.String(), "new=4") {
		t.Errorf("no warning in the default logger: %q", logs.String())
	}
}

func TestKgoStrictKeepsKeysOnTheirPartitionWhenCountGrows(t *testing.T) {
	var rec recorder
	tp := Kgo(HashCRC32, quiet(), rec.option(), StrictPartitionCount()).ForTopic("t")
	keys := make([][]byte, 200)
	first := make([]int, len(keys))
	for i := range keys {
		keys[i] = keyN(i)
		first[i] = tp.Partition(&kgo.Record{Key: keys[i]}, 6)
	}
	for _, n := range []int{8, 8, 12} {
		for i, key := range keys {
			if p := tp.Partition(&kgo.Record{Key: key}, n); p != first[i] {
				t.Fatalf("with %d partitions key %q moved from %d to %d", n, key, first[i], p)
			}
		}
	}
	if want := []change{{"t", 6, 8}, {"t", 6, 12}}; fmt.Sprint(rec.changes) != fmt.Sprint(want) {
		t.Errorf("hook calls = %v, want %v", rec.changes, want)
	}
}

func TestKgoStrictFailsRecordsWhosePartitionIsGone(t *testing.T) {
	tp := Kgo(HashMurmur2, quiet(), StrictPartitionCount()).ForTopic("t")
	var kept, failed int
	for i := range 200 {
		key := keyN(i)
		old := tp.Partition(&kgo.Record{Key: key}, 8)
		got := tp.Partition(&kgo.Record{Key: key}, 4)
		switch {
		case old < 4 && got == old:
			kept++
		case old >= 4 && got == -1:
			failed++
		default:
			t.Fatalf("key %q: partition %d of 8, then %d of 4", key, old, got)
		}
	}
	if kept == 0 || failed == 0 {
		t.Errorf("kept %d, failed %d; want some of each", kept, failed)
	}
}

func TestNilKeysWithFewerWritablePartitionsAreNoCountChange(t *testing.T) {
	var rec recorder
	tp := Kgo(HashMurmur2, quiet(), rec.option(), StrictPartitionCount()).ForTopic("t")
	sp := Sarama(HashMurmur2, quiet(), rec.option(), StrictPartitionCount())("t")
	for _, n := range []int{6, 3, 1, 6} {
		tp.Partition(&kgo.Record{Key: []byte("k")}, 6)
		tp.Partition(&kgo.Record{}, n)
		if _, err := sp.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder("k")}, 6); err != nil {
			t.Fatal(err)
		}
		if _, err := sp.Partition(&sarama.ProducerMessage{}, int32(n)); err != nil {
			t.Fatal(err)
		}
	}
	if len(rec.changes) != 0 {
		t.Errorf("hook calls = %v, want none", rec.changes)
	}
}

func TestSaramaFollowsNewPartitionCountAndReportsIt(t *testing.T) {
	var rec recorder
	sp := Sarama(HashFNV1a, quiet(), rec.option())("orders")
	key := movingKey(t, HashFNV1a, 6, 8)
	msg := &sarama.ProducerMessage{Topic: "orders", Key: sarama.ByteEncoder(key)}
	if _, err := sp.Partition(msg, 6); err != nil {
		t.Fatal(err)
	}
	got, err := sp.Partition(msg, 8)
	want, _ := ForKey(HashFNV1a, key, 8)
	if err != nil || int(got) != want {
		t.Errorf("with 8 partitions: %d, %v; want %d", got, err, want)
	}
	if want := []change{{"orders", 6, 8}}; fmt.Sprint(rec.changes) != fmt.Sprint(want) {
		t.Errorf("hook calls = %v, want %v", rec.changes, want)
	}
}

func TestSaramaStrictFailsKeyedMessagesWhileCountDiffers(t *testing.T) {
	var rec recorder
	sp := Sarama(HashMurmur2, quiet(), rec.option(), StrictPartitionCount())("orders")
	keyed := &sarama.ProducerMessage{Topic: "orders", Key: sarama.StringEncoder("user-1")}
	want6, _ := ForKey(HashMurmur2, []byte("user-1"), 6)

	if p, err := sp.Partition(keyed, 6); err != nil || int(p) != want6 {
		t.Fatalf("first message: %d, %v; want %d", p, err, want6)
	}
	for range 3 {
		p, err := sp.Partition(keyed, 8)
		var pcc *PartitionCountChangedError
		if !errors.As(err, &pcc) {
			t.Fatalf("with 8 partitions: %d, %v; want a *PartitionCountChangedError", p, err)
		}
		if *pcc != (PartitionCountChangedError{Topic: "orders", Old: 6, New: 8}) {
			t.Errorf("error = %+v", *pcc)
		}
		if !errors.Is(err, ErrPartitionCountChanged) {
			t.Error("error does not match ErrPartitionCountChanged")
		}
		// As sarama hands it back to the application.
		if perr := error(&sarama.ProducerError{Msg: keyed, Err: err}); !errors.Is(perr, ErrPartitionCountChanged) {
			t.Error("sarama.ProducerError does not match ErrPartitionCountChanged")
		}
		if p != -1 {
			t.Errorf("partition %d with an error, want -1", p)
		}
	}
	if _, err := sp.Partition(&sarama.ProducerMessage{Topic: "orders"}, 8); err != nil {
		t.Errorf("message without a key failed: %v", err)
	}
	if p, err := sp.Partition(keyed, 6); err != nil || int(p) != want6 {
		t.Errorf("back at 6 partitions: %d, %v; want %d", p, err, want6)
	}
	if want := []change{{"orders", 6, 8}}; fmt.Sprint(rec.changes) != fmt.Sprint(want) {
		t.Errorf("hook calls = %v, want %v", rec.changes, want)
	}
}

func TestTopicsAreGuardedSeparately(t *testing.T) {
	var rec recorder
	p := Kgo(HashMurmur2, quiet(), rec.option())
	a, b := p.ForTopic("a"), p.ForTopic("b")
	a.Partition(&kgo.Record{Key: []byte("k")}, 3)
	b.Partition(&kgo.Record{Key: []byte("k")}, 5)
	a.Partition(&kgo.Record{Key: []byte("k")}, 3)
	b.Partition(&kgo.Record{Key: []byte("k")}, 5)
	if len(rec.changes) != 0 {
		t.Errorf("hook calls = %v, want none", rec.changes)
	}
}

type failingEncoder struct{}

var errEncode = errors.New("encode failed")

func (failingEncoder) Encode() ([]byte, error) { return nil, errEncode }
func (failingEncoder) Length() int             { return 0 }

func TestPartitionersRejectBadInputWithoutPanicking(t *testing.T) {
	keyed := &kgo.Record{Key: []byte("k")}
	if p := Kgo(Hasher(7), quiet()).ForTopic("t").Partition(keyed, 3); p != -1 {
		t.Errorf("kgo, unknown hasher: partition %d, want -1", p)
	}
	if p := Kgo(Hasher(7), quiet()).ForTopic("t").Partition(&kgo.Record{}, 3); p < 0 || p >= 3 {
		t.Errorf("kgo, unknown hasher, nil key: partition %d, want one of 3", p)
	}
	for _, n := range []int{0, -1} {
		if p := Kgo(HashMurmur2, quiet()).ForTopic("t").Partition(keyed, n); p != -1 {
			t.Errorf("kgo, %d partitions: partition %d, want -1", n, p)
		}
		if p := Kgo(HashMurmur2, quiet()).ForTopic("t").Partition(&kgo.Record{}, n); p != -1 {
			t.Errorf("kgo, %d partitions, nil key: partition %d, want -1", n, p)
		}
	}

	tests := []struct {
		name string
		h    Hasher
		msg  *sarama.ProducerMessage
		n    int32
		want error
	}{
		{"unknown hasher", Hasher(7), &sarama.ProducerMessage{Key: sarama.StringEncoder("k")}, 3, ErrUnknownHasher},
		{"zero partitions", HashCRC32, &sarama.ProducerMessage{Key: sarama.StringEncoder("k")}, 0, ErrInvalidPartitionCount},
		{"zero partitions, nil key", HashCRC32, &sarama.ProducerMessage{}, 0, ErrInvalidPartitionCount},
		{"key fails to encode", HashFNV1a, &sarama.ProducerMessage{Key: failingEncoder{}}, 3, errEncode},
	}
	for _, tt := range tests {
		t.Run("sarama/"+tt.name, func(t *testing.T) {
			p, err := Sarama(tt.h, quiet())("t").Partition(tt.msg, tt.n)
			if !errors.Is(err, tt.want) || p != -1 {
				t.Errorf("Partition = %d, %v; want -1, %v", p, err, tt.want)
			}
		})
	}
}
