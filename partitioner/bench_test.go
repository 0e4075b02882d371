package partitioner

import (
	"fmt"
	"testing"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
)

var benchSizes = []int{8, 64, 1024}

func benchHash(b *testing.B, fn func([]byte)) {
	for _, size := range benchSizes {
		key := make([]byte, size)
		for i := range key {
			key[i] = byte(i)
		}
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				fn(key)
			}
		})
	}
}

func BenchmarkMurmur2(b *testing.B) { benchHash(b, func(k []byte) { Murmur2(k) }) }
func BenchmarkFNV1a(b *testing.B)   { benchHash(b, func(k []byte) { FNV1a(k) }) }
func BenchmarkCRC32(b *testing.B)   { benchHash(b, func(k []byte) { CRC32(k) }) }

func BenchmarkForKey(b *testing.B) {
	for _, h := range []Hasher{HashMurmur2, HashFNV1a, HashCRC32} {
		b.Run(h.String(), func(b *testing.B) {
			benchHash(b, func(k []byte) { ForKey(h, k, 12) })
		})
	}
}

func BenchmarkKgoPartition(b *testing.B) {
	tp := Kgo(HashMurmur2, quiet()).ForTopic("t")
	r := &kgo.Record{Key: []byte("user-12345678")}
	b.SetBytes(int64(len(r.Key)))
	for b.Loop() {
		tp.Partition(r, 12)
	}
}

func BenchmarkSaramaPartition(b *testing.B) {
	p := Sarama(HashFNV1a, quiet())("t")
	msg := &sarama.ProducerMessage{Key: sarama.StringEncoder("user-12345678")}
	b.SetBytes(int64(msg.Key.Length()))
	for b.Loop() {
		p.Partition(msg, 12)
	}
}
