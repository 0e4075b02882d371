package partitioner

import (
	"hash/crc32"
	"hash/fnv"
	"log/slog"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
)

// 20,000 random keys of 0–64 bytes: about 300 of each length, so every tail case of each hash
// (length mod 4) is met many times over; a wrong hash disagrees on almost every key.
const compatKeys = 20_000

var compatCounts = []int{1, 2, 7, 100, 1000, math.MaxInt32}

func compatKeySet() [][]byte {
	rng := rand.New(rand.NewPCG(0x6b61666b61, 0x6775617264)) // fixed seed
	keys := make([][]byte, compatKeys)
	for i := range keys {
		keys[i] = randomKey(rng)
	}
	return keys
}

func quiet() Opt { return Logger(slog.New(slog.DiscardHandler)) }

func fnv32a(b []byte) uint32 {
	h := fnv.New32a()
	h.Write(b)
	return h.Sum32()
}

// TestKgoAgreesWithFranzGo compares, key by key, our kgo partitioner and
// ForKey with franz-go's own partitioners.
func TestKgoAgreesWithFranzGo(t *testing.T) {
	keys := compatKeySet()
	murmurAsUint := func(b []byte) uint32 { return uint32(Murmur2(b)) }
	tests := []struct {
		name string
		h    Hasher
		ref  kgo.Partitioner
	}{
		{"murmur2 vs StickyKeyPartitioner(nil)", HashMurmur2, kgo.StickyKeyPartitioner(nil)},
		{"murmur2 vs KafkaHasher(our Murmur2)", HashMurmur2, kgo.StickyKeyPartitioner(kgo.KafkaHasher(murmurAsUint))},
		{"fnv1a vs SaramaCompatHasher(hash/fnv)", HashFNV1a, kgo.StickyKeyPartitioner(kgo.SaramaCompatHasher(fnv32a))},
		{"crc32 vs SaramaHasher(crc32.ChecksumIEEE)", HashCRC32, kgo.StickyKeyPartitioner(kgo.SaramaHasher(crc32.ChecksumIEEE))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.h == HashCRC32 && math.MaxInt == math.MaxInt32 {
				t.Skip("kgo.SaramaHasher matches librdkafka on 64-bit platforms only")
			}
			for _, n := range compatCounts {
				ours := Kgo(tt.h, quiet()).ForTopic("t")
				ref := tt.ref.ForTopic("t")
				for _, key := range keys {
					r := &kgo.Record{Key: key}
					want := ref.Partition(r, n)
					if got := ours.Partition(r, n); got != want {
						t.Fatalf("n=%d key=%x: Kgo picks %d, franz-go %d", n, key, got, want)
					}
					if got, _ := ForKey(tt.h, key, n); got != want {
						t.Fatalf("n=%d key=%x: ForKey picks %d, franz-go %d", n, key, got, want)
					}
				}
			}
		})
	}
}

// TestSaramaAgreesWithSarama compares, key by key, our sarama partitioner and
// ForKey with sarama's own partitioners.
func TestSaramaAgreesWithSarama(t *testing.T) {
	keys := compatKeySet()
	tests := []struct {
		name string
		h    Hasher
		ref  sarama.PartitionerConstructor
	}{
		{"fnv1a vs NewHashPartitioner", HashFNV1a, sarama.NewHashPartitioner},
		{"fnv1a vs NewCustomHashPartitioner(fnv.New32a)", HashFNV1a, sarama.NewCustomHashPartitioner(fnv.New32a)},
		{"crc32 vs NewConsistentCRCHashPartitioner", HashCRC32, sarama.NewConsistentCRCHashPartitioner},
		{"crc32 vs NewCustomPartitioner(WithHashUnsigned, crc32.NewIEEE)", HashCRC32,
			sarama.NewCustomPartitioner(sarama.WithHashUnsigned(), sarama.WithCustomHashFunction(crc32.NewIEEE))},
		{"murmur2 vs NewMurmur2Partitioner", HashMurmur2, sarama.NewMurmur2Partitioner},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, n := range compatCounts {
				ours := Sarama(tt.h, quiet())("t")
				ref := tt.ref("t")
				for _, key := range keys {
					msg := &sarama.ProducerMessage{Topic: "t", Key: sarama.ByteEncoder(key)}
					want, err := ref.Partition(msg, int32(n))
					if err != nil {
						t.Fatal(err)
					}
					got, err := ours.Partition(msg, int32(n))
					if err != nil || got != want {
						t.Fatalf("n=%d key=%x: Sarama picks %d, %v; sarama %d", n, key, got, err, want)
					}
					if got, _ := ForKey(tt.h, key, n); got != int(want) {
						t.Fatalf("n=%d key=%x: ForKey picks %d, sarama %d", n, key, got, want)
					}
				}
			}
		})
	}
}
