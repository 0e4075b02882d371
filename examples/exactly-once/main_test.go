package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestRunCopiesExactlyOnceThroughARebalance(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, []string{"-records", "3000", "-keys", "30", "-copiers", "2", "-work", "2ms"}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, &out)
	}
	for _, want := range []string{"produced 3000 records of 30 keys", "copier 1 started",
		"read 3000 records of orders-copied with read_committed: 0 missing, 0 duplicated, 0 out of key order",
		"every input record copied exactly once, every key in order"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, &out)
		}
	}
}

func TestBadFlagsAreRefused(t *testing.T) {
	for _, args := range [][]string{{"-copiers", "0"}, {"-txn-interval", "0s"}, {"-records", "0"}} {
		if err := run(context.Background(), args, &bytes.Buffer{}); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
