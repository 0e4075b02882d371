package brokertest_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kafkaguard/kafkaguard/internal/testkit"
	"github.com/kafkaguard/kafkaguard/kafkatest"
)

// kafkaScript is integration/kafka/kafka.sh, which fetches Apache Kafka's jars and runs its
// main classes (`kafka.sh tool CLASS ARGS...`).
const kafkaScript = "../../../integration/kafka/kafka.sh"

// javaTools returns a function that builds the command running one of Apache Kafka's Java tools
// through kafka.sh. It skips the test unless Java is installed and either
// KAFKAGUARD_JAVA_TOOLS=1 is set (kafka.sh then fetches the jars if needed) or the jar cache is
// already complete.
// javaFetch is the one "kafka.sh fetch" of this test binary.
var javaFetch struct {
	once sync.Once
	out  []byte
	err  error
}

func javaTools(t *testing.T) func(ctx context.Context, class string, args ...string) *exec.Cmd {
	t.Helper()
	if testing.Short() {
		t.Skip("starts JVMs; skipped in -short mode")
	}
	if _, err := exec.LookPath("java"); err != nil {
		t.Skip("java is not on PATH: Kafka's Java tools need a Java 17+ runtime")
	}
	script, err := filepath.Abs(kafkaScript)
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("KAFKAGUARD_JAVA_TOOLS") != "1" && !kafkaJarsCached() {
		t.Skip("Kafka's jars are not cached: set KAFKAGUARD_JAVA_TOOLS=1 (fetches them with integration/kafka/kafka.sh; CI does) or run `integration/kafka/kafka.sh fetch`")
	}
	// One fetch for the package's Java tests, which run in parallel.
	javaFetch.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		javaFetch.out, javaFetch.err = exec.CommandContext(ctx, "bash", script, "fetch").CombinedOutput()
	})
	if out, err := javaFetch.out, javaFetch.err; err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 69 {
			t.Skipf("kafka.sh: a prerequisite is missing:\n%s", out)
		}
		t.Fatalf("kafka.sh fetch: %v\n%s", err, out)
	}
	return func(ctx context.Context, class string, args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, "bash", append([]string{script, "tool", class}, args...)...)
		// kafka.sh runs java as its child: signals go to the whole process group, and when the
		// context ends the group is killed, so no JVM outlives the test.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return signalGroup(cmd, syscall.SIGKILL) }
		cmd.WaitDelay = 5 * time.Second
		t.Cleanup(func() { _ = signalGroup(cmd, syscall.SIGKILL) })
		return cmd
	}
}

// signalGroup sends sig to the process group of a started command.
func signalGroup(cmd *exec.Cmd, sig syscall.Signal) error {
	if cmd.Process == nil {
		return nil
	}
	return syscall.Kill(-cmd.Process.Pid, sig)
}

// kafkaJarsCached reports whether kafka.sh's jar cache is complete.
func kafkaJarsCached() bool {
	cache := os.Getenv("KAFKAGUARD_KAFKA_CACHE")
	if cache == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return false
			}
			base = filepath.Join(home, ".cache")
		}
		cache = filepath.Join(base, "kafkaguard", "kafka")
	}
	version := os.Getenv("KAFKA_VERSION")
	if version == "" {
		version = "4.4.0"
	}
	_, err := os.Stat(filepath.Join(cache, version, ".complete"))
	return err == nil
}

// javaTopic starts a three-broker cluster with min.insync.replicas=2 and a topic of the given
// partitions replicated three times, all in sync.
func javaTopic(ctx context.Context, t *testing.T, topic string, partitions int32) *kafkatest.Cluster {
	t.Helper()
	c := kafkatest.NewCluster(t, kafkatest.Brokers(3), kafkatest.BrokerConfig("min.insync.replicas", "2"))
	if err := c.CreateTopic(ctx, topic, partitions, 3, nil); err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < partitions; p++ {
		if _, err := c.WaitPartition(ctx, topic, p, func(i kafkatest.PartitionInfo) bool { return len(i.ISR) == 3 }); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func TestJavaConsoleProducerAndConsumerRoundTrip(t *testing.T) {
	t.Parallel()
	tool := javaTools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const topic, group, partitions, keys, perKey = "java-console", "java-console", 3, 10, 50
	c := javaTopic(ctx, t, topic, partitions)
	bootstrap := strings.Join(c.Bootstrap(), ",")

	var in strings.Builder
	for s := 0; s < perKey; s++ {
		for k := 0; k < keys; k++ {
			fmt.Fprintf(&in, "k%02d:k%02d:%d\n", k, k, s)
		}
	}
	prod := tool(ctx, "org.apache.kafka.tools.ConsoleProducer", "--bootstrap-server", bootstrap, "--topic", topic,
		"--reader-property", "parse.key=true", "--reader-property", "key.separator=:",
		"--command-property", "acks=all", "--command-property", "enable.idempotence=true")
	prod.Stdin = strings.NewReader(in.String())
	if out, err := prod.CombinedOutput(); err != nil {
		t.Fatalf("console producer: %v\n%s", err, out)
	}
	ends := endOffsets(ctx, t, c, topic)
	total := int64(0)
	for _, e := range ends {
		total += e
	}
	if total != keys*perKey {
		t.Fatalf("the log holds %d records after the console producer, want %d (end offsets %v)", total, keys*perKey, ends)
	}
	if first := firstRecord(ctx, t, c, topic, 0); first.ProducerID < 0 {
		t.Fatalf("the console producer's first record has producer id %d: idempotence was not used", first.ProducerID)
	}

	cons := tool(ctx, "org.apache.kafka.tools.consumer.ConsoleConsumer", "--bootstrap-server", bootstrap, "--topic", topic,
		"--group", group, "--from-beginning", "--max-messages", fmt.Sprint(keys*perKey), "--timeout-ms", "30000",
		"--formatter-property", "print.key=true", "--formatter-property", "key.separator=:")
	var stderr strings.Builder
	cons.Stderr = &stderr
	out, err := cons.Output()
	if err != nil {
		t.Fatalf("console consumer: %v\n%s", err, stderr.String())
	}
	var got []produced
	for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		got = append(got, parseKeyed(t, line))
	}
	checkExactlyOnceInOrder(t, got, keys, perKey)
	committed := committedOffsets(ctx, t, c, group, topic)
	for p, end := range ends {
		if committed[p] != end {
			t.Fatalf("partition %d: the console consumer's group committed %d, want the end offset %d (all: %v)\n%s", p, committed[p], end, committed, stderr.String())
		}
	}
}

// verifiableEvent is one JSON line of VerifiableProducer or VerifiableConsumer.
type verifiableEvent struct {
	Name string `json:"name"`
	// producer_send_success, producer_send_error, record_data (VerifiableConsumer --verbose)
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Key       string `json:"key"`
	Value     string `json:"value"`
	Exception string `json:"exception"`
	Message   string `json:"message"`
	// records_consumed, offsets_committed
	Count      int  `json:"count"`
	Success    bool `json:"success"`
	Partitions []struct {
		Topic     string `json:"topic"`
		Partition int32  `json:"partition"`
		Count     int    `json:"count"`
		MinOffset int64  `json:"minOffset"`
		MaxOffset int64  `json:"maxOffset"`
	} `json:"partitions"`
	// tool_data (VerifiableProducer's summary)
	Sent  int `json:"sent"`
	Acked int `json:"acked"`
}

// eventLog collects a tool's JSON event lines from its stdout.
type eventLog struct {
	mu     sync.Mutex
	events []verifiableEvent
	other  []string // lines that are not JSON events
	done   chan struct{}
}

func readEvents(t *testing.T, cmd *exec.Cmd) *eventLog {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	l := &eventLog{done: make(chan struct{})}
	go func() {
		defer close(l.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var e verifiableEvent
			l.mu.Lock()
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Name == "" {
				l.other = append(l.other, sc.Text())
			} else {
				l.events = append(l.events, e)
			}
			l.mu.Unlock()
		}
	}()
	return l
}

// tail returns the last n events and non-event lines, for failure messages.
func (l *eventLog) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, e := range l.events[max(0, len(l.events)-n):] {
		fmt.Fprintf(&b, "%+v\n", e)
	}
	for _, line := range l.other[max(0, len(l.other)-n):] {
		fmt.Fprintln(&b, line)
	}
	return b.String()
}

// toolOutput returns a tool's recent events and stderr, for the failure message of a wait.
func toolOutput(l *eventLog, stderr *testkit.LockedBuffer) func() string {
	return func() string {
		return "last events:\n" + l.tail(10) + "\nstderr:\n" + lastLines(stderr.String(), 30)
	}
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// named returns the events called name.
func (l *eventLog) named(name string) []verifiableEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []verifiableEvent
	for _, e := range l.events {
		if e.Name == name {
			out = append(out, e)
		}
	}
	return out
}

// TestJavaVerifiableProducerAndConsumerLoseNothingWhenABrokerIsKilled runs Kafka's own
// verification tools — VerifiableProducer (acks=-1, idempotent) and VerifiableConsumer (a group
// committing after each poll) — while the group's coordinator, a partition leader too, is killed: every
// acknowledged value is consumed, at the offset it was acknowledged at, and no value is stored
// twice.
func TestJavaVerifiableProducerAndConsumerLoseNothingWhenABrokerIsKilled(t *testing.T) {
	t.Parallel()
	tool := javaTools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const topic, group, partitions, messages = "java-verifiable", "java-verifiable", 3, 3000
	c := javaTopic(ctx, t, topic, partitions)
	// The victim is the group's coordinator, which also leads a partition of the topic (every
	// broker leads one): the producer and the consumer both lose a broker they talk to.
	coord := newAdmin(t, c).FindGroupCoordinators(ctx, group)[group]
	if coord.Err != nil {
		t.Fatalf("no coordinator for group %s: %v", group, coord.Err)
	}
	victim := coord.NodeID
	led := 0
	for p := int32(0); p < partitions; p++ {
		if info, _ := c.Partition(topic, p); info.Leader == victim {
			led++
		}
	}
	if led == 0 {
		t.Fatalf("coordinator %d leads no partition of %s", victim, topic)
	}
	// Clients start from a broker that stays up.
	var seeds []string
	for _, b := range c.Brokers() {
		if b.ID != victim {
			seeds = append(seeds, b.Address)
		}
	}
	bootstrap := strings.Join(seeds, ",")

	dir := t.TempDir()
	// VerifiableProducer sets retries=0 unless its config file says otherwise; idempotence needs
	// retries (and keeps them in order).
	producerConfig := filepath.Join(dir, "producer.properties")
	if err := os.WriteFile(producerConfig, []byte("enable.idempotence=true\nretries=2147483647\nretry.backoff.ms=50\nretry.backoff.max.ms=200\nlinger.ms=5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	consumerConfig := filepath.Join(dir, "consumer.properties")
	if err := os.WriteFile(consumerConfig, []byte("heartbeat.interval.ms=200\nretry.backoff.ms=50\nreconnect.backoff.max.ms=200\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	consCmd := tool(ctx, "org.apache.kafka.tools.VerifiableConsumer", "--bootstrap-server", bootstrap, "--topic", topic,
		"--group-id", group, "--reset-policy", "earliest", "--verbose", "--session-timeout", "6000",
		"--command-config", consumerConfig)
	var consErr testkit.LockedBuffer
	consCmd.Stderr = &consErr
	consumed := readEvents(t, consCmd)
	if err := consCmd.Start(); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 30*time.Second, "the verifiable consumer to be assigned partitions", func() bool {
		return len(consumed.named("partitions_assigned")) > 0
	}, toolOutput(consumed, &consErr))

	prodCmd := tool(ctx, "org.apache.kafka.tools.VerifiableProducer", "--bootstrap-server", bootstrap, "--topic", topic,
		"--acks", "-1", "--max-messages", fmt.Sprint(messages), "--throughput", "1000", "--repeating-keys", "30",
		"--command-config", producerConfig)
	var prodErr testkit.LockedBuffer
	prodCmd.Stderr = &prodErr
	produced := readEvents(t, prodCmd)
	if err := prodCmd.Start(); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 30*time.Second, "a third of the records to be acknowledged", func() bool {
		return len(produced.named("producer_send_success")) >= messages/3
	}, toolOutput(produced, &prodErr))
	if err := c.Kill(victim); err != nil {
		t.Fatal(err)
	}
	killedAt := len(produced.named("producer_send_success"))
	select {
	case <-produced.done: // the producer closed its stdout: it has finished
	case <-ctx.Done():
		t.Fatalf("verifiable producer did not finish; last events:\n%s\nstderr:\n%s", produced.tail(10), lastLines(prodErr.String(), 30))
	}
	if err := prodCmd.Wait(); err != nil {
		t.Fatalf("verifiable producer: %v\n%s", err, prodErr.String())
	}
	acked := produced.named("producer_send_success")
	for _, e := range produced.named("producer_send_error") {
		t.Errorf("not acknowledged: value %s: %s: %s", e.Value, e.Exception, e.Message)
	}
	if len(acked) != messages {
		t.Fatalf("%d of %d records acknowledged\n%s", len(acked), messages, prodErr.String())
	}

	// Wait until the consumer has seen every acknowledged value, then stop it.
	ackedAt := map[string]verifiableEvent{}
	for _, e := range acked {
		if prev, ok := ackedAt[e.Value]; ok {
			t.Fatalf("value %s acknowledged twice: %d@%d and %d@%d", e.Value, prev.Partition, prev.Offset, e.Partition, e.Offset)
		}
		ackedAt[e.Value] = e
	}
	testkit.WaitFor(t, 30*time.Second, "the verifiable consumer to consume every acknowledged value", func() bool {
		seen := map[string]bool{}
		for _, e := range consumed.named("record_data") {
			seen[e.Value] = true
		}
		for v := range ackedAt {
			if !seen[v] {
				return false
			}
		}
		return true
	}, toolOutput(consumed, &consErr))
	if err := signalGroup(consCmd, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-consumed.done
	if err := consCmd.Wait(); err != nil && !isSignalExit(err) {
		t.Fatalf("verifiable consumer: %v\n%s", err, consErr.String())
	}

	// Each value was consumed at the offset it was acknowledged at; a value stored twice would
	// show at two offsets. A record read again after a rebalance (same offset) is a redelivery.
	type at struct {
		partition int32
		offset    int64
	}
	where := map[string]at{}
	redelivered := 0
	lastOfKey := map[string]int{} // VerifiableProducer's values count up: per key they must too
	records := consumed.named("record_data")
	for _, e := range records {
		if e.Topic != topic {
			t.Fatalf("record of topic %q", e.Topic)
		}
		pos := at{e.Partition, e.Offset}
		if prev, ok := where[e.Value]; ok {
			if prev != pos {
				t.Fatalf("value %s stored twice: at %d@%d and %d@%d", e.Value, prev.partition, prev.offset, pos.partition, pos.offset)
			}
			redelivered++
			continue
		}
		where[e.Value] = pos
		a, ok := ackedAt[e.Value]
		if !ok {
			t.Fatalf("consumed value %s that was never acknowledged", e.Value)
		}
		if a.Partition != e.Partition || a.Offset != e.Offset {
			t.Fatalf("value %s acknowledged at %d@%d, consumed at %d@%d", e.Value, a.Partition, a.Offset, e.Partition, e.Offset)
		}
		n, err := strconv.Atoi(e.Value)
		if err != nil {
			t.Fatalf("value %q is not VerifiableProducer's counter", e.Value)
		}
		if last, ok := lastOfKey[e.Key]; ok && n <= last {
			t.Fatalf("key %s: value %d consumed after %d (reordered)", e.Key, n, last)
		}
		lastOfKey[e.Key] = n
	}
	// The group committed everything it read (VerifiableConsumer commits the partitions of each
	// poll, so an empty partition has no commit): a restarted consumer would resume at the end.
	ends := endOffsets(ctx, t, c, topic)
	committed := committedOffsets(ctx, t, c, group, topic)
	for p, end := range ends {
		if at, ok := committed[p]; (ok || end > 0) && at != end {
			t.Fatalf("partition %d: committed %d after the run, want the end offset %d (committed %v, ends %v)", p, at, end, committed, ends)
		}
	}
	// records_consumed summarises each poll; it must account for every record_data line.
	summarised := 0
	for _, e := range consumed.named("records_consumed") {
		summarised += e.Count
	}
	if summarised != len(records) {
		t.Fatalf("records_consumed events count %d records, record_data lines %d", summarised, len(records))
	}
	failedCommits := 0
	for _, e := range consumed.named("offsets_committed") {
		if !e.Success {
			failedCommits++
		}
	}
	if len(lastOfKey) != 30 {
		t.Fatalf("consumed %d keys, want 30", len(lastOfKey))
	}
	t.Logf("broker %d (group coordinator, leader of %d partitions) killed after %d acks; %d acknowledged, %d consumed, %d redelivered, %d failed commits; end offsets %v",
		victim, led, killedAt, len(acked), len(where), redelivered, failedCommits, ends)
}

// isSignalExit reports whether err is a child's exit caused by a signal or the JVM's exit status
// for SIGTERM (143).
func isSignalExit(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return true
	}
	return ee.ExitCode() == 143
}
