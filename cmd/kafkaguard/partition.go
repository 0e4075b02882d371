package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/kafkaguard/kafkaguard/partitioner"
)

const partitionUsage = `usage: kafkaguard partition --partitions N [--partitioner murmur2|fnv1a|crc32] KEY...

Prints, one line per KEY, the partition each client family picks for it among
N partitions, tab-separated:

	KEY	murmur2	fnv1a	crc32

murmur2 is the Java client's, franz-go's and librdkafka's "murmur2"; fnv1a is
sarama's default and librdkafka's "fnv1a"; crc32 is librdkafka's default
"consistent". With --partitioner, prints only KEY and that family's partition.
Keys are taken as bytes; a key may not contain a tab or a newline.

Flags:
`

// runPartition implements "kafkaguard partition". It returns the exit code:
// 0 on success, 1 if the output cannot be written, 2 for bad usage.
func runPartition(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("partition", flag.ContinueOnError)
	fs.SetOutput(stderr)
	partitions := fs.Int("partitions", 0, "number of partitions of the topic, 1 to 2147483647 (required)")
	only := fs.String("partitioner", "", "print only this family's partition: murmur2, fnv1a or crc32")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), partitionUsage)
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "kafkaguard partition: "+format+"\n", a...)
		fmt.Fprintln(stderr, "usage: kafkaguard partition --partitions N [--partitioner murmur2|fnv1a|crc32] KEY...")
		return 2
	}

	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["partitions"] {
		return usageErr("--partitions is required")
	}
	hashers := []partitioner.Hasher{partitioner.HashMurmur2, partitioner.HashFNV1a, partitioner.HashCRC32}
	if set["partitioner"] {
		h, err := partitioner.ParseHasher(*only)
		if err != nil {
			return usageErr("--partitioner must be murmur2, fnv1a or crc32, not %q", *only)
		}
		hashers = []partitioner.Hasher{h}
	}
	if _, err := partitioner.ForKey(hashers[0], nil, *partitions); err != nil {
		return usageErr("--partitions must be 1 to %d, not %d", math.MaxInt32, *partitions)
	}
	keys := fs.Args()
	if len(keys) == 0 {
		return usageErr("at least one KEY is required")
	}
	for _, k := range keys {
		if strings.ContainsAny(k, "\t\n\r") {
			return usageErr("key %q contains a tab or newline, which the output format cannot carry", k)
		}
	}

	w := bufio.NewWriter(stdout)
	for _, k := range keys {
		w.WriteString(k)
		for _, h := range hashers {
			p, _ := partitioner.ForKey(h, []byte(k), *partitions) // count and hasher checked above
			fmt.Fprintf(w, "\t%d", p)
		}
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintf(stderr, "kafkaguard partition: writing output: %v\n", err)
		return 1
	}
	return 0
}
