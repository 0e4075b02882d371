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
	if sum := committedSum(t, out.String(), "payments"); sum != 300 {
		t.Errorf("committed offsets add up to %d, want 300:\n%s", sum, &out)
	}

	// A second run of the same group resumes at the committed offsets: of the one record it
	// produces, it handles that one alone, and commits past it.
	out.Reset()
	if err := run(ctx, []string{"-bootstrap", strings.Join(c.Bootstrap(), ","), "-topic", "payments", "-group", "pay",
		"-produce", "1", "-keys", "1"}, &out); err != nil {
		t.Fatalf("second run: %v\n%s", err, &out)
	}
	if !strings.Contains(out.String(), "handled 1 records of 1 keys") {
		t.Errorf("the second run did not handle exactly its one new record:\n%s", &out)
	}
	if sum := committedSum(t, out.String(), "payments"); sum != 301 {
		t.Errorf("after the second run the committed offsets add up to %d, want 301:\n%s", sum, &out)
	}
}

// committedSum adds up the offsets of run's "committed offsets of TOPIC: p=o ..." line.
func committedSum(t *testing.T, out, topic string) int {
	t.Helper()
	prefix := "committed offsets of " + topic + ": "
	i := strings.Index(out, prefix)
	if i < 0 {
		t.Fatalf("output has no %q line:\n%s", prefix, out)
	}
	line := strings.TrimSpace(strings.SplitN(out[i+len(prefix):], "\n", 2)[0])
	var sum int
	for _, f := range strings.Fields(line) {
		var p, off int
		if _, err := fmt.Sscanf(f, "%d=%d", &p, &off); err != nil {
			t.Fatalf("committed field %q: %v", f, err)
		}
		sum += off
	}
	return sum
}

func TestRunRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-order", "random"}, {"-keys", "0"}, {"-expect", "0", "-produce", "0"}} {
		var out bytes.Buffer
		if err := run(context.Background(), args, &out); err == nil {
			t.Errorf("run %v succeeded", args)
		}
	}
}
