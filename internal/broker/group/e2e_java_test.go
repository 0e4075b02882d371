package group_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/group"
	"github.com/kafkaguard/kafkaguard/internal/testkit"
)

// kafkaLib returns the directory of Apache Kafka's jars fetched by
// integration/kafka/kafka.sh, or "" if they (or java) are not there.
func kafkaLib() string {
	if _, err := exec.LookPath("java"); err != nil {
		return ""
	}
	dir := os.Getenv("KAFKAGUARD_KAFKA_LIB")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		matches, _ := filepath.Glob(filepath.Join(home, ".cache", "kafkaguard", "kafka", "4.*", "lib"))
		if len(matches) == 0 {
			return ""
		}
		dir = matches[len(matches)-1]
	}
	if jars, _ := filepath.Glob(filepath.Join(dir, "kafka-clients-*.jar")); len(jars) == 0 {
		return ""
	}
	return dir
}

// TestJavaConsoleConsumerGroupAgainstCoordinator runs Apache Kafka's own
// console consumer (the Java classic group protocol) in a group: it must
// join, get both partitions, commit its positions and leave when it exits.
// Skipped when the Kafka jars are not on this machine.
func TestJavaConsoleConsumerGroupAgainstCoordinator(t *testing.T) {
	t.Parallel()
	lib := kafkaLib()
	if lib == "" {
		t.Skip("no java or no Kafka jars (run integration/kafka/kafka.sh fetch, or set KAFKAGUARD_KAFKA_LIB)")
	}
	if testing.Short() {
		t.Skip("starts a JVM")
	}
	c := group.NewCoordinator(group.Config{OffsetsPartitions: 1}, nil)
	t.Cleanup(c.Close)
	if err := c.Load(context.Background(), 0, &sliceStore{}, nil); err != nil {
		t.Fatal(err)
	}
	b := startMiniBroker(t, c)
	addr := net.JoinHostPort(b.host, strconv.Itoa(int(b.port)))

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "java", "-Xmx256m", "-cp", filepath.Join(lib, "*"),
		"org.apache.kafka.tools.consumer.ConsoleConsumer",
		"--bootstrap-server", addr, "--topic", "t", "--group", "jg",
		"--timeout-ms", "4000",
		"--consumer-property", "group.protocol=classic",
		"--consumer-property", "client.id=java-console",
		"--consumer-property", "heartbeat.interval.ms=200",
		"--consumer-property", "session.timeout.ms=6000",
	)
	var out testkit.LockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stable := false
	for !stable && ctx.Err() == nil && cmd.ProcessState == nil {
		d := c.DescribeGroups(ctx, &kmsg.DescribeGroupsRequest{Version: 5, Groups: []string{"jg"}}).Groups[0]
		stable = d.State == "Stable" && len(d.Members) == 1 && d.Members[0].ClientID == "java-console" &&
			len(d.Members[0].MemberAssignment) > 0
		time.Sleep(20 * time.Millisecond)
	}
	err := cmd.Wait()
	if ctx.Err() != nil {
		t.Fatalf("console consumer did not exit: %v\n%s", err, out.String())
	}
	if !stable {
		t.Fatalf("the Java consumer never formed a stable group\n%s", out.String())
	}

	// It ran (and timed out on the empty topic): its positions are
	// committed and it left.
	fr := kmsg.NewPtrOffsetFetchRequest()
	fr.Version = 9
	fr.Groups = []kmsg.OffsetFetchRequestGroup{{Group: "jg", Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "t", Partitions: []int32{0, 1}}}}}
	ps := c.OffsetFetch(ctx, fr).Groups[0].Topics[0].Partitions
	if ps[0].Offset != 0 || ps[1].Offset != 0 {
		t.Fatalf("committed offsets %d and %d, want 0 and 0 (the consumer's positions)\n%s", ps[0].Offset, ps[1].Offset, out.String())
	}
	d := c.DescribeGroups(ctx, &kmsg.DescribeGroupsRequest{Version: 5, Groups: []string{"jg"}}).Groups[0]
	if d.State != "Empty" || d.ProtocolType != "consumer" {
		t.Fatalf("group after the consumer exited: state %s protocol type %q, want Empty consumer\n%s", d.State, d.ProtocolType, out.String())
	}
}
