package main

import (
	"bufio"
	"fmt"
	"math"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kafkaguard/kafkaguard/partitioner"
)

const partitionLong = `Prints, one line per KEY, the partition each client family picks for it among
N partitions, tab-separated:

	KEY	murmur2	fnv1a	crc32

murmur2 is the Java client's, franz-go's and librdkafka's "murmur2"; fnv1a is
sarama's default and librdkafka's "fnv1a"; crc32 is librdkafka's default
"consistent". With --partitioner, prints only KEY and that family's partition.
Keys are taken as bytes; a key may not contain a tab or a newline. A key that
begins with "-" goes after "--".

Exit status: 0 on success, 1 if the output cannot be written, 2 for bad
usage.`

// newPartitionCmd is "kafkaguard partition".
func newPartitionCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "partition --partitions N [--partitioner murmur2|fnv1a|crc32] KEY...",
		Short: "Print the partition each client family picks for keys",
		Long:  partitionLong,
		Example: `  kafkaguard partition --partitions 12 order-1 order-2
  kafkaguard partition order-1 --partitions 12 --partitioner fnv1a
  kafkaguard partition --partitions 12 -- -key-with-a-dash`,
	}
	fs := cmd.Flags()
	partitions := fs.Int("partitions", 0, "number of partitions of the topic, 1 to 2147483647 (required)")
	only := fs.String("partitioner", "", "print only this family's partition: murmur2, fnv1a or crc32")
	cmd.RunE = func(cmd *cobra.Command, keys []string) error {
		if !fs.Changed("partitions") {
			return usageErrorf("--partitions is required")
		}
		hashers := []partitioner.Hasher{partitioner.HashMurmur2, partitioner.HashFNV1a, partitioner.HashCRC32}
		if fs.Changed("partitioner") {
			h, err := partitioner.ParseHasher(*only)
			if err != nil {
				return usageErrorf("--partitioner must be murmur2, fnv1a or crc32, not %q", *only)
			}
			hashers = []partitioner.Hasher{h}
		}
		if _, err := partitioner.ForKey(hashers[0], nil, *partitions); err != nil {
			return usageErrorf("--partitions must be 1 to %d, not %d", math.MaxInt32, *partitions)
		}
		if len(keys) == 0 {
			return usageErrorf("at least one KEY is required")
		}
		for _, k := range keys {
			if strings.ContainsAny(k, "\t\n\r") {
				return usageErrorf("key %q contains a tab or newline, which the output format cannot carry", k)
			}
		}

		w := bufio.NewWriter(cmd.OutOrStdout())
		for _, k := range keys {
			w.WriteString(k)
			for _, h := range hashers {
				p, _ := partitioner.ForKey(h, []byte(k), *partitions) // count and hasher checked above
				fmt.Fprintf(w, "\t%d", p)
			}
			w.WriteByte('\n')
		}
		if err := w.Flush(); err != nil {
			return failure(fmt.Errorf("writing output: %w", err))
		}
		return nil
	}
	return cmd
}
