package partitioner

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"testing"
)

// Kafka's own vectors: org.apache.kafka.common.utils.UtilsTest.testMurmur2.
func TestMurmur2MatchesKafkaUtilsTestVectors(t *testing.T) {
	tests := []struct {
		key  string
		want int32
	}{
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
	}
	for _, tt := range tests {
		if got := Murmur2([]byte(tt.key)); got != tt.want {
			t.Errorf("Murmur2(%q) = %d, want %d", tt.key, got, tt.want)
		}
	}
}

// librdkafka's vectors: src/rdmurmur2.c unittest_murmur2 (from the Java
// client), which walk every tail length and unaligned starts; and sarama's
// murmur2_test vectors (TestMurmur2).
func TestMurmur2MatchesLibrdkafkaAndSaramaVectors(t *testing.T) {
	const unaligned = "PreAmbleWillBeRemoved,ThePrePartThatIs"
	tests := []struct {
		key  string
		want uint32
	}{
		{"kafka", 0xd067cf64},
		{"giberish123456789", 0x8f552b0c},
		{"1234", 0x9fc97b14},
		{"234", 0xe7c009ca},
		{"34", 0x873930da},
		{"4", 0x5a4b5ca1},
		{unaligned, 0x78424f1c},
		{unaligned[1:], 0x4a62b377},
		{unaligned[2:], 0xe0e4e09e},
		{unaligned[3:], 0x62b8b43f},
		{"", 0x106e08d9},
		// sarama
		{"foo", 597841616},
		{"bar", 988958145},
		{"baz", 1973573280},
		{"sarama", 770765511},
		{"", 275646681},
		{"kafka", 3496464228},
	}
	for _, tt := range tests {
		if got := uint32(Murmur2([]byte(tt.key))); got != tt.want {
			t.Errorf("Murmur2(%q) = %#x, want %#x", tt.key, got, tt.want)
		}
	}
	if got, want := Murmur2(nil), Murmur2([]byte{}); got != want {
		t.Errorf("Murmur2(nil) = %d, want Murmur2(empty) = %d", got, want)
	}
}

// Go's hash/fnv is the reference FNV-1a; librdkafka's src/rdfnv1a.c
// unittest_fnv1a lists |int32(fnv1a(key))|, sarama's NewHashPartitioner value
// before the modulo, for the same keys as its murmur2 test.
func TestFNV1aMatchesLibrdkafkaVectors(t *testing.T) {
	const unaligned = "PreAmbleWillBeRemoved,ThePrePartThatIs"
	tests := []struct {
		key  string
		want int32
	}{
		{"kafka", 0xd33c4e1},
		{"giberish123456789", 0x77a58295},
		{"1234", 0x23bdd03},
		{"234", 0x2dea3cd2},
		{"34", 0x740fa83e},
		{"4", 0x310ca263},
		{unaligned, 0x65cbd69c},
		{unaligned[1:], 0x6e49c79a},
		{unaligned[2:], 0x69eed356},
		{unaligned[3:], 0x6abcc023},
		{"", 0x7ee3623b},
	}
	for _, tt := range tests {
		got := int32(FNV1a([]byte(tt.key)))
		if got < 0 {
			got = -got
		}
		if got != tt.want {
			t.Errorf("|int32(FNV1a(%q))| = %#x, want %#x", tt.key, got, tt.want)
		}
	}
}

func TestFNV1aEqualsHashFNVOnRandomKeys(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	h := fnv.New32a()
	for range 10000 {
		key := randomKey(rng)
		h.Reset()
		h.Write(key)
		if got, want := FNV1a(key), h.Sum32(); got != want {
			t.Fatalf("FNV1a(%x) = %#x, hash/fnv says %#x", key, got, want)
		}
	}
}

// librdkafka's tests/0048-partitioner.c: crc32 values of its keys ("the
// 'crc32' command on OSX").
func TestCRC32MatchesLibrdkafkaVectors(t *testing.T) {
	tests := []struct {
		key  string
		want uint32
	}{
		{"", 0},
		{"23456", 0xb1b451d7},
		{"this is another string with more length to it perhaps", 0xb0150df7},
		{"hejsan", 0xd077037e},
	}
	for _, tt := range tests {
		if got := CRC32([]byte(tt.key)); got != tt.want {
			t.Errorf("CRC32(%q) = %#x, want %#x", tt.key, got, tt.want)
		}
	}
}

// Partition vectors published by the clients themselves.
func TestForKeyMatchesPublishedPartitions(t *testing.T) {
	long := "this is another string with more length to it perhaps"
	tests := []struct {
		source string
		h      Hasher
		key    string
		n      int
		want   int
	}{
		// sarama partitioner_test.go TestMurmur2Partitioner (Java DefaultPartitioner, 100 partitions)
		{"sarama", HashMurmur2, "foo", 100, 16},
		{"sarama", HashMurmur2, "bar", 100, 45},
		{"sarama", HashMurmur2, "baz", 100, 80},
		{"sarama", HashMurmur2, "kafka", 100, 80},
		{"sarama", HashMurmur2, "sarama", 100, 11},
		// kafka-python test_partitioner.py, from the Java partitioner, 1000 partitions
		{"kafka-python", HashMurmur2, "", 1000, 681},
		{"kafka-python", HashMurmur2, "a", 1000, 524},
		{"kafka-python", HashMurmur2, "ab", 1000, 434},
		{"kafka-python", HashMurmur2, "abc", 1000, 107},
		{"kafka-python", HashMurmur2, "123456789", 1000, 566},
		{"kafka-python", HashMurmur2, "\x00 ", 1000, 742},
		// librdkafka 0048-partitioner.c, 17 and 7 partitions
		{"librdkafka", HashMurmur2, "", 17, 0x106e08d9 % 17},
		{"librdkafka", HashMurmur2, "23456", 7, 0x058d780f % 7},
		{"librdkafka", HashMurmur2, long, 17, 0x4f7703da % 17},
		{"librdkafka", HashMurmur2, "hejsan", 17, 0x5ec19395 % 17},
		{"librdkafka", HashFNV1a, "", 17, 0x7ee3623b % 17},
		{"librdkafka", HashFNV1a, "23456", 17, 0x27e6f469 % 17},
		{"librdkafka", HashFNV1a, long, 7, 0x155e3e5f % 7},
		{"librdkafka", HashFNV1a, "hejsan", 17, 0x17b1e27a % 17},
		{"librdkafka", HashCRC32, "", 17, 0},
		{"librdkafka", HashCRC32, "23456", 17, 0xb1b451d7 % 17},
		{"librdkafka", HashCRC32, long, 7, 0xb0150df7 % 7},
		{"librdkafka", HashCRC32, "hejsan", 17, 0xd077037e % 17},
		// kafka-python FNV1a32Partitioner, "the same as Goka/Sarama"
		{"kafka-python", HashFNV1a, "123", 3, 2},
		{"kafka-python", HashFNV1a, "123", 2, 1},
		{"kafka-python", HashFNV1a, "123", 1, 0},
		{"kafka-python", HashFNV1a, "f232oo3232", 4, 2},
		{"kafka-python", HashFNV1a, "f232oo3232", 2, 0},
		// sarama: "1468509572224" hashes to 0x80000000 (math.MinInt32)
		{"sarama", HashFNV1a, "1468509572224", 50, 48},
		// sarama TestConsistentCRCHashPartitioner, 100 partitions
		{"sarama", HashCRC32, "abc123def456", 100, 57},
		{"sarama", HashCRC32, "SheetJS", 100, 26}, // 70 if the hash were taken signed
		{"sarama", HashCRC32, "9e8c7f4cf45857cfff7645d6", 100, 24},
		{"sarama", HashCRC32, "3900446192ff85a5f67da10c", 100, 75},
		{"sarama", HashCRC32, "0f4407b7a67d6d27de372198", 100, 50},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%v/%q/%d", tt.source, tt.h, tt.key, tt.n), func(t *testing.T) {
			got, err := ForKey(tt.h, []byte(tt.key), tt.n)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("ForKey(%v, %q, %d) = %d, want %d", tt.h, tt.key, tt.n, got, tt.want)
			}
		})
	}
}

func TestForKeyStaysInRangeOverWholeHashRange(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	counts := []int{1, 2, 3, 7, 1 << 16, math.MaxInt32 - 1, math.MaxInt32}
	for _, h := range []Hasher{HashMurmur2, HashFNV1a, HashCRC32} {
		for _, n := range counts {
			for range 2000 {
				key := randomKey(rng)
				p, err := ForKey(h, key, n)
				if err != nil || p < 0 || p >= n {
					t.Fatalf("ForKey(%v, %x, %d) = %d, %v; want a partition in [0, %d)", h, key, n, p, err, n)
				}
			}
		}
	}
}

func TestForKeyRejectsBadInput(t *testing.T) {
	tests := []struct {
		name string
		h    Hasher
		n    int
		want error
	}{
		{"zero partitions", HashMurmur2, 0, ErrInvalidPartitionCount},
		{"negative partitions", HashCRC32, -3, ErrInvalidPartitionCount},
		{"more partitions than Kafka allows", HashFNV1a, math.MaxInt32 + 1, ErrInvalidPartitionCount},
		{"unknown hasher", Hasher(42), 10, ErrUnknownHasher},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ForKey(tt.h, []byte("k"), tt.n)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ForKey error = %v, want %v", err, tt.want)
			}
			if p != -1 {
				t.Errorf("ForKey partition = %d on error, want -1", p)
			}
		})
	}
}

func TestParseHasherRoundTripsNamesAndRejectsOthers(t *testing.T) {
	for _, h := range []Hasher{HashMurmur2, HashFNV1a, HashCRC32} {
		got, err := ParseHasher(h.String())
		if err != nil || got != h {
			t.Errorf("ParseHasher(%q) = %v, %v; want %v", h.String(), got, err, h)
		}
	}
	for _, name := range []string{"", "MURMUR2", "consistent_random", "murmur2_random", "fnv", "Hasher(3)"} {
		if _, err := ParseHasher(name); !errors.Is(err, ErrUnknownHasher) {
			t.Errorf("ParseHasher(%q) error = %v, want ErrUnknownHasher", name, err)
		}
	}
	if got := Hasher(9).String(); got != "Hasher(9)" {
		t.Errorf("Hasher(9).String() = %q", got)
	}
	var zero Hasher
	if zero != HashMurmur2 {
		t.Errorf("zero Hasher is %v, want murmur2", zero)
	}
}

// randomKey returns a key of 0 to 64 random bytes (never nil).
func randomKey(rng *rand.Rand) []byte {
	key := make([]byte, rng.IntN(65))
	for i := range key {
		key[i] = byte(rng.Uint32())
	}
	return key
}
