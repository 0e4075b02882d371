package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kafkaguard/kafkaguard/kafkatest"
)

func TestRunConsumesTheBundledBrokerInKeyOrder(t *testing.T) {
	for _, order := range []string{"key", "partition", "unordered"} {
		t.Run(order, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var out bytes.Buffer
			err := run(ctx, []string{"-order", order, "-produce", "600", "-keys", "20", "-work", "1ms"}, &out)
			if err != nil {
				t.Fatalf("run: %v\n%s", err, &out)
			}
			for _, want := range []string{"produced 600 records of 20 keys", "handled 600 records of 20 keys",
				"committed offsets of orders: "} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, &out)
				}
			}
			if order != "unordered" && !strings.Contains(out.String(), "every key in order") {
				t.Errorf("output lacks the order verdict:\n%s", &out)
			}
		})
	}
}

func TestRunConsumesAGivenBootstrapAndCommitsTheEnd(t *testing.T) {
	c := kafkatest.NewCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.CreateTopic(ctx, "payments", 2, 1, nil); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	args := []string{"-bootstrap", strings.Join(c.Bootstrap(), ","), "-topic", "payments", "-group", "pay",
		"-produce", "300", "-keys", "7"}
	if err := run(ctx, args, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, &out)
	}
	// 300 records over two partitions: the committed offsets add up to 300.
	line := out.String()[strings.Index(out.String(), "committed offsets of payments: "):]
	line = strings.TrimSpace(strings.SplitN(line, "\n", 2)[0])
	var sum int
	for _, f := range strings.Fields(strings.TrimPrefix(line, "committed offsets of payments: ")) {
		var p, off int
		if _, err := fmt.Sscanf(f, "%d=%d", &p, &off); err != nil {
			t.Fatalf("committed field %q: %v", f, err)
		}
		sum += off
	}
	if sum != 300 {
		t.Errorf("committed offsets add up to %d, want 300:\n%s", sum, &out)
	}

	// A second run of the same group has nothing left to read.
	out.Reset()
	ctx2, cancel2 := context.WithTimeout(ctx, 3*time.Second)
	defer cancel2()
	if err := run(ctx2, []string{"-bootstrap", strings.Join(c.Bootstrap(), ","), "-topic", "payments", "-group", "pay",
		"-expect", "0"}, &out); err != nil {
		t.Fatalf("second run: %v\n%s", err, &out)
	}
	if !strings.Contains(out.String(), "handled 0 records") {
		t.Errorf("the second run handled records after everything was committed:\n%s", &out)
	}
}

func TestRunRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-order", "random"}, {"-keys", "0"}, {"-expect", "0", "-produce", "0"}} {
		var out bytes.Buffer
		if err := run(context.Background(), args, &out); err == nil {
			t.Errorf("run %v succeeded", args)
		}
	}
}
