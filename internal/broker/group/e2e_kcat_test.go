package group_test

import (
	"context"
	"net"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/group"
	"github.com/kafkaguard/kafkaguard/internal/testkit"
)

// TestKcatGroupConsumerAgainstCoordinator runs kcat's balanced consumer
// (librdkafka): it must form a stable group owning both partitions, and
// leave it on SIGTERM. Skipped when kcat is not installed.
func TestKcatGroupConsumerAgainstCoordinator(t *testing.T) {
	t.Parallel()
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat not installed")
	}
	c := group.NewCoordinator(group.Config{OffsetsPartitions: 1}, nil)
	t.Cleanup(c.Close)
	if err := c.Load(context.Background(), 0, &sliceStore{}, nil); err != nil {
		t.Fatal(err)
	}
	b := startMiniBroker(t, c)
	addr := net.JoinHostPort(b.host, strconv.Itoa(int(b.port)))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, "-b", addr, "-G", "kg", "t", "-q",
		"-X", "client.id=kcat", "-X", "heartbeat.interval.ms=100", "-X", "session.timeout.ms=6000",
		"-X", "fetch.wait.max.ms=100")
	var out testkit.LockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	stable := false
	for !stable && ctx.Err() == nil {
		d := c.DescribeGroups(ctx, &kmsg.DescribeGroupsRequest{Version: 5, Groups: []string{"kg"}}).Groups[0]
		stable = d.State == "Stable" && len(d.Members) == 1 && d.Members[0].ClientID == "kcat" &&
			len(d.Members[0].MemberAssignment) > 0
		time.Sleep(20 * time.Millisecond)
	}
	if !stable {
		t.Fatalf("kcat never formed a stable group\n%s", out.String())
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	d := c.DescribeGroups(ctx, &kmsg.DescribeGroupsRequest{Version: 5, Groups: []string{"kg"}}).Groups[0]
	if d.State != "Empty" {
		t.Fatalf("group after kcat stopped: %s, want Empty (it left)\n%s", d.State, out.String())
	}
}
