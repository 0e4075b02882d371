// Package partitioner maps record keys to partitions exactly as the common
// Kafka clients do, so that producers written with different clients agree
// on where a key lives, and it guards the key→partition map against a change
// of a topic's partition count under a running producer.
//
// # Hashers
//
// Three client families hash keys differently. Each Hasher reproduces one of
// them byte for byte, hash and reduction alike:
//
//   - HashMurmur2: toPositive(murmur2(key)) % n, the Java client's
//     default, franz-go's kgo.StickyKeyPartitioner, librdkafka's "murmur2"
//     and "murmur2_random", and sarama.NewMurmur2Partitioner.
//   - HashFNV1a: |int32(fnv1a(key)) % n|, sarama.NewHashPartitioner (its
//     default) and librdkafka's "fnv1a" and "fnv1a_random".
//   - HashCRC32: crc32(key) % n computed unsigned, librdkafka's
//     "consistent" and "consistent_random" (librdkafka's own default) and
//     sarama.NewConsistentCRCHashPartitioner.
//
// ForKey is the pure mapping. Kgo and Sarama wrap a Hasher as a franz-go
// kgo.Partitioner and a sarama.PartitionerConstructor.
//
// # Records without a key
//
// A nil key is not hashed: every partitioner in this package sends such
// records to one "sticky" partition and switches to another at a batch
// boundary (kgo, as KIP-480) or after a number of records (sarama, which gives
// partitioners no batch signal; see StickyRecords). A non-nil empty key
// is a key and is hashed. This differs in two places from librdkafka:
// "consistent" and "murmur2"/"fnv1a" hash a nil key as if it were empty (so
// all of them go to one fixed partition), and "consistent_random" also treats
// an empty key as no key. Neither matters for ordering, which only exists per
// key.
//
// # Partition count changes
//
// Adding partitions to a topic changes hash(key) % n for most keys: records of
// one key written before and after the change land on different partitions,
// and consumers may see them out of order. The Kgo and Sarama partitioners
// remember, per topic, the partition count seen with the first keyed record
// and report any later change: they log a warning (see Logger) and call
// the hook given with OnPartitionCountChange. By default they then hash
// over the new count, as every other client does. With
// StrictPartitionCount they keep per-key order instead:
//
//   - Kgo keeps hashing over the first count it saw, so every key stays on
//     its partition and new partitions receive no keyed records; a kgo
//     partitioner cannot fail a record with an error of its own. If the count
//     shrank (the topic was recreated) and a key's old partition is gone, the
//     record is failed by kgo with its "invalid record partitioning choice"
//     error.
//   - Sarama fails every keyed message with a *PartitionCountChangedError
//     (errors.Is ErrPartitionCountChanged) while the count differs from the
//     first one.
//
// Either way, adopting the new count is an operator's decision: drain the
// topic's consumers of records of the old layout, then restart producers.
//
// # Options
//
// Options have bare names (StrictPartitionCount, not
// WithStrictPartitionCount), as in every kafkaguard package, and are of type
// Opt; Kgo and Sarama take the same options.
package partitioner
