// Package wraptest holds the checks the wrap-producer programs' tests share.
package wraptest

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/kafkaguard/kafkaguard/partitioner"
)

// KeysOnMurmur2Partitions runs a wrap-producer program's run function with six records on its
// bundled cluster (topic orders, 3 partitions) and fails t unless each acked key is on the
// partition partitioner.HashMurmur2 picks: the partition the other client's program, Java and
// franz-go put it on.
func KeysOnMurmur2Partitions(t *testing.T, run func(ctx context.Context, args []string, out io.Writer) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, []string{"-n", "6"}, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, &out)
	}
	acked := regexp.MustCompile(`(?m)^acked (\S+) .* at orders/(\d+) offset`).FindAllStringSubmatch(out.String(), -1)
	for _, m := range acked {
		if want, _ := partitioner.ForKey(partitioner.HashMurmur2, []byte(m[1]), 3); m[2] != strconv.Itoa(want) {
			t.Errorf("key %s acked on partition %s, want %d (murmur2, as the other client):\n%s", m[1], m[2], want, &out)
		}
	}
	if len(acked) != 6 {
		t.Fatalf("%d acked lines, want 6:\n%s", len(acked), &out)
	}
}
