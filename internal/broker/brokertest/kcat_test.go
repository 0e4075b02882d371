package brokertest_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kafkaguard/kafkaguard/internal/testkit"
	"github.com/kafkaguard/kafkaguard/kafkatest"
)

// kcatBinary returns the path of kcat (librdkafka's command-line client), skipping the test when
// it is not installed.
func kcatBinary(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat is not on PATH (Debian/Ubuntu: apt-get install kcat); CI installs it")
	}
	return path
}

// kcatMetadata is the part of `kcat -L -J` this test reads.
type kcatMetadata struct {
	Brokers []struct {
		ID   int32  `json:"id"`
		Name string `json:"name"`
	} `json:"brokers"`
	Topics []struct {
		Topic      string `json:"topic"`
		Partitions []struct {
			Partition int32 `json:"partition"`
			Leader    int32 `json:"leader"`
			Replicas  []struct {
				ID int32 `json:"id"`
			} `json:"replicas"`
			ISRs []struct {
				ID int32 `json:"id"`
			} `json:"isrs"`
		} `json:"partitions"`
	} `json:"topics"`
}

// sameIDs reports whether a and b hold the same broker ids, in any order.
func sameIDs(a, b []int32) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// parseKeyed parses a `%k:%s` line "key:key:seq", checking that the key and the value's key agree.
func parseKeyed(t *testing.T, line string) produced {
	t.Helper()
	key, value, ok := strings.Cut(line, ":")
	if !ok {
		t.Fatalf("kcat printed %q, want key:value", line)
	}
	p := parseValue(t, []byte(value))
	if p.key != key {
		t.Fatalf("kcat printed %q: the record's key %q is not its value's key %q", line, key, p.key)
	}
	return p
}

// TestKcatIdempotentProducerConsumerAndGroupLoseNothing drives librdkafka through the real kcat
// binary against a three-broker cluster: metadata listing, an idempotent acks=all producer, a
// plain consumer and a balanced group consumer that commits what it read.
func TestKcatIdempotentProducerConsumerAndGroupLoseNothing(t *testing.T) {
	t.Parallel()
	kcat := kcatBinary(t)
	c := kafkatest.NewCluster(t, kafkatest.Brokers(3), kafkatest.BrokerConfig("min.insync.replicas", "2"))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const topic, group, partitions, keys, perKey = "kcat", "kcat-group", 3, 10, 100
	if err := c.CreateTopic(ctx, topic, partitions, 3, nil); err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < partitions; p++ {
		if _, err := c.WaitPartition(ctx, topic, p, func(i kafkatest.PartitionInfo) bool { return len(i.ISR) == 3 }); err != nil {
			t.Fatal(err)
		}
	}
	bootstrap := strings.Join(c.Bootstrap(), ",")
	run := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, kcat, append([]string{"-b", bootstrap}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("kcat %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return string(out)
	}

	t.Run("metadata", func(t *testing.T) {
		var md kcatMetadata
		if err := json.Unmarshal([]byte(run("", "-L", "-J", "-t", topic)), &md); err != nil {
			t.Fatal(err)
		}
		if len(md.Brokers) != 3 {
			t.Fatalf("kcat -L lists %d brokers, want 3: %+v", len(md.Brokers), md.Brokers)
		}
		if len(md.Topics) != 1 || md.Topics[0].Topic != topic || len(md.Topics[0].Partitions) != partitions {
			t.Fatalf("kcat -L lists topics %+v, want %s with %d partitions", md.Topics, topic, partitions)
		}
		for _, p := range md.Topics[0].Partitions {
			info, err := c.Partition(topic, p.Partition)
			if err != nil {
				t.Fatal(err)
			}
			var reps, isr []int32
			for _, r := range p.Replicas {
				reps = append(reps, r.ID)
			}
			for _, r := range p.ISRs {
				isr = append(isr, r.ID)
			}
			if p.Leader != info.Leader || !sameIDs(reps, info.Replicas) || !sameIDs(isr, info.ISR) {
				t.Fatalf("partition %d: kcat sees leader %d replicas %v isr %v, the cluster has %+v", p.Partition, p.Leader, reps, isr, info)
			}
		}
	})

	var in strings.Builder
	for s := 0; s < perKey; s++ {
		for k := 0; k < keys; k++ {
			fmt.Fprintf(&in, "k%02d:k%02d:%d\n", k, k, s)
		}
	}
	run(in.String(), "-P", "-t", topic, "-K:", "-X", "enable.idempotence=true", "-X", "acks=all")
	ends := endOffsets(ctx, t, c, topic)
	total := int64(0)
	for _, e := range ends {
		total += e
	}
	if total != keys*perKey {
		t.Fatalf("the log holds %d records after kcat -P, want %d (end offsets %v)", total, keys*perKey, ends)
	}

	// librdkafka really wrote idempotently: its batches carry a producer id.
	first := firstRecord(ctx, t, c, topic, 0)
	if first.ProducerID < 0 {
		t.Fatalf("kcat's first record has producer id %d: idempotence was not used", first.ProducerID)
	}

	t.Run("consumer", func(t *testing.T) {
		out := run("", "-C", "-t", topic, "-e", "-q", "-o", "beginning", "-f", "%k:%s\n")
		var got []produced
		for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
			got = append(got, parseKeyed(t, line))
		}
		checkExactlyOnceInOrder(t, got, keys, perKey)
	})

	t.Run("group", func(t *testing.T) {
		// kcat -G runs until stopped; stop it with SIGTERM once it printed every record. On the
		// way out librdkafka commits the offsets it consumed and leaves the group.
		cmd := exec.CommandContext(ctx, kcat, "-b", bootstrap, "-G", group, topic, "-q", "-u", "-f", "%k:%s\n",
			"-X", "auto.offset.reset=earliest", "-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=200",
			"-X", "fetch.wait.max.ms=100")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr testkit.LockedBuffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Process.Kill()
		var (
			mu    sync.Mutex
			lines []string
		)
		scanned := make(chan error, 1)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				mu.Lock()
				lines = append(lines, sc.Text())
				mu.Unlock()
			}
			scanned <- sc.Err()
		}()
		testkit.WaitFor(t, 30*time.Second, "kcat -G to print every record", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(lines) >= keys*perKey
		})
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := <-scanned; err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("kcat -G after SIGTERM: %v\n%s", err, stderr.String())
		}
		var got []produced
		for _, line := range lines {
			got = append(got, parseKeyed(t, line))
		}
		checkExactlyOnceInOrder(t, got, keys, perKey)

		committed := committedOffsets(ctx, t, c, group, topic)
		for p, end := range ends {
			if committed[p] != end {
				t.Fatalf("partition %d: kcat's group committed %d, want the end offset %d (all: %v)\n%s", p, committed[p], end, committed, stderr.String())
			}
		}
		described, err := newAdmin(t, c).DescribeGroups(ctx, group)
		if err != nil {
			t.Fatal(err)
		}
		if d := described[group]; d.State != "Empty" || len(d.Members) != 0 {
			t.Fatalf("group after kcat stopped: state %s with %d members, want Empty (it left)", d.State, len(d.Members))
		}
	})
}
