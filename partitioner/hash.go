package partitioner

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
)

// Murmur2 returns the 32-bit MurmurHash2 of key with Kafka's seed 0x9747b28c,
// as a signed int32 like org.apache.kafka.common.utils.Utils.murmur2.
func Murmur2(key []byte) int32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	h := seed ^ uint32(len(key))
	rest := key
	for len(rest) >= 4 {
		k := binary.LittleEndian.Uint32(rest)
		k *= m
		k ^= k >> r
		k *= m
		h = h*m ^ k
		rest = rest[4:]
	}
	switch len(rest) {
	case 3:
		h ^= uint32(rest[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(rest[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(rest[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

// FNV1a returns the 32-bit FNV-1a hash of key, equal to hash/fnv.New32a's
// Sum32 without allocating a hash.Hash32.
func FNV1a(key []byte) uint32 {
	const (
		offset uint32 = 2166136261
		prime  uint32 = 16777619
	)
	h := offset
	for _, b := range key {
		h ^= uint32(b)
		h *= prime
	}
	return h
}

// CRC32 returns the IEEE CRC-32 of key (crc32.ChecksumIEEE), the checksum
// librdkafka's consistent partitioner hashes with.
func CRC32(key []byte) uint32 { return crc32.ChecksumIEEE(key) }

// Hasher names a client family's key→partition mapping: a hash function and
// the way its result is reduced to a partition index. The zero Hasher is
// HashMurmur2, Kafka's default.
type Hasher uint8

const (
	// HashMurmur2 maps a key to toPositive(Murmur2(key)) % n, where toPositive
	// clears the sign bit: the Java client's default partitioner, franz-go's
	// kgo.StickyKeyPartitioner(nil), librdkafka's "murmur2" and
	// "murmur2_random", and sarama.NewMurmur2Partitioner.
	HashMurmur2 Hasher = iota

	// HashFNV1a maps a key to |int32(FNV1a(key)) % n|: sarama's default
	// sarama.NewHashPartitioner and librdkafka's "fnv1a" and "fnv1a_random".
	HashFNV1a

	// HashCRC32 maps a key to CRC32(key) % n in unsigned arithmetic:
	// librdkafka's "consistent" and "consistent_random" (librdkafka's
	// default) and sarama.NewConsistentCRCHashPartitioner.
	HashCRC32
)

// String returns the hasher's name as ParseHasher accepts it: "murmur2",
// "fnv1a" or "crc32".
func (h Hasher) String() string {
	switch h {
	case HashMurmur2:
		return "murmur2"
	case HashFNV1a:
		return "fnv1a"
	case HashCRC32:
		return "crc32"
	}
	return fmt.Sprintf("Hasher(%d)", uint8(h))
}

// ParseHasher returns the Hasher named name: "murmur2", "fnv1a" or "crc32".
// librdkafka's partitioner names are not accepted, because some of them also
// change how empty keys are treated (see the package documentation).
func ParseHasher(name string) (Hasher, error) {
	for _, h := range []Hasher{HashMurmur2, HashFNV1a, HashCRC32} {
		if name == h.String() {
			return h, nil
		}
	}
	return 0, fmt.Errorf("%w %q (want murmur2, fnv1a or crc32)", ErrUnknownHasher, name)
}

func (h Hasher) valid() bool { return h <= HashCRC32 }

// ForKey returns the partition, in [0, n), that the client family h picks for
// key among n partitions. A nil key is hashed like an empty one; the
// partitioners of this package never hash nil keys (see the package
// documentation). ForKey returns an error wrapping ErrInvalidPartitionCount
// if n is not in [1, math.MaxInt32], and one wrapping ErrUnknownHasher if h
// is not a known Hasher.
func ForKey(h Hasher, key []byte, n int) (int, error) {
	if err := checkCount(n); err != nil {
		return -1, err
	}
	if !h.valid() {
		return -1, fmt.Errorf("%w %v", ErrUnknownHasher, h)
	}
	return h.partition(key, n), nil
}

func checkCount(n int) error {
	if n < 1 || n > math.MaxInt32 {
		return fmt.Errorf("%w %d (want 1 to %d)", ErrInvalidPartitionCount, n, math.MaxInt32)
	}
	return nil
}

// partition is ForKey for a valid h and n in [1, math.MaxInt32].
func (h Hasher) partition(key []byte, n int) int {
	switch h {
	case HashFNV1a:
		// sarama: the int32 remainder, negated when negative. Go's %
		// truncates toward zero, as sarama's does, and
		// math.MinInt32 % n never overflows for n >= 1.
		p := int32(FNV1a(key)) % int32(n)
		if p < 0 {
			p = -p
		}
		return int(p)
	case HashCRC32:
		return int(CRC32(key) % uint32(n))
	default:
		return int(uint32(Murmur2(key))&0x7fffffff) % n
	}
}
