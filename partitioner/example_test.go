package partitioner_test

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/partitioner"
)

func ExampleForKey() {
	for _, h := range []partitioner.Hasher{partitioner.HashMurmur2, partitioner.HashFNV1a, partitioner.HashCRC32} {
		p, err := partitioner.ForKey(h, []byte("SheetJS"), 100)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(h, p)
	}
	// Output:
	// murmur2 27
	// fnv1a 23
	// crc32 26
}

func ExampleKgo() {
	// A franz-go producer that places keys as librdkafka (the C, Python,
	// .NET... clients) does, and reports partition count changes.
	p := partitioner.Kgo(partitioner.HashCRC32,
		partitioner.OnPartitionCountChange(func(topic string, old, new int) {
			slog.Warn("partitions changed", "topic", topic, "old", old, "new", new)
		}),
		partitioner.StrictPartitionCount(),
	)
	// kgo.NewClient(kgo.SeedBrokers("localhost:9092"), kgo.RecordPartitioner(p)) would use it; the
	// client asks it where each record goes:
	orders := p.ForTopic("orders")
	for _, key := range []string{"order-1", "order-2", "order-3"} {
		fmt.Println(key, orders.Partition(&kgo.Record{Key: []byte(key)}, 12))
	}
	// Output:
	// order-1 7
	// order-2 9
	// order-3 11
}

func ExampleSarama() {
	cfg := sarama.NewConfig()
	cfg.Producer.Partitioner = partitioner.Sarama(partitioner.HashMurmur2, partitioner.StrictPartitionCount())

	// A failed message's error then tells a partition count change apart.
	err := error(&sarama.ProducerError{Err: &partitioner.PartitionCountChangedError{Topic: "orders", Old: 6, New: 8}})
	var pcc *partitioner.PartitionCountChangedError
	if errors.As(err, &pcc) {
		fmt.Printf("%s: %d -> %d partitions\n", pcc.Topic, pcc.Old, pcc.New)
	}
	// Output: orders: 6 -> 8 partitions
}
