package retry_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/internal/testkit"
	"github.com/kafkaguard/kafkaguard/retry"
)

// The helper processes below run in a child copy of the test binary, so that
// tests can kill them with SIGKILL at a chosen moment.
const helperEnv = "RETRY_TEST_HELPER"

// TestMain runs a helper process's body when the test binary was started as one (helperEnv
// set), and the tests otherwise.
func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "job":
		os.Exit(helperJob())
	case "consumer":
		os.Exit(helperConsumer())
	case "":
		// Most tests here wait on a bundled cluster's timeouts: four at a
		// time (see testkit.RunParallel).
		os.Exit(testkit.RunParallel(m, 4))
	default:
		fmt.Fprintf(os.Stderr, "%s=%q: unknown helper\n", helperEnv, os.Getenv(helperEnv))
		os.Exit(2)
	}
}

func startHelper(t *testing.T, kind string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(append(os.Environ(), helperEnv+"="+kind), env...)
	cmd.Stderr = os.Stderr
	return cmd
}

// helperJob runs a Job whose handler fails each record's first k attempts,
// k taken from the value "name:k" (k < 0: always), and logs its start to
// RETRY_LOG as "start job PID", every run as "run VALUE ATTEMPT" and every
// success as "ok VALUE ATTEMPT".
func helperJob() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	f, err := os.OpenFile(os.Getenv("RETRY_LOG"), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer f.Close()
	fmt.Fprintf(f, "start job %d\n", os.Getpid()) // SIGTERM stops it gracefully from here on
	maxAttempts, _ := strconv.Atoi(os.Getenv("RETRY_MAX"))
	commitEvery := 30 * time.Millisecond
	if d, err := time.ParseDuration(os.Getenv("RETRY_COMMIT")); err == nil {
		commitEvery = d
	}
	opts := []retry.JobOpt{retry.Topic(os.Getenv("RETRY_TOPIC")), retry.MaxAttempts(maxAttempts), retry.RetryBackoff(fastBackoff),
		retry.Concurrency(4), retry.CommitInterval(commitEvery),
		retry.KgoOpts(kgo.SeedBrokers(strings.Split(os.Getenv("RETRY_BOOTSTRAP"), ",")...),
			kgo.SessionTimeout(time.Second), kgo.HeartbeatInterval(100*time.Millisecond))}
	if os.Getenv("RETRY_EOS") != "" {
		opts = append(opts, retry.ExactlyOnce("helper"))
	}
	j, err := retry.NewJob(func(ctx context.Context, m *retry.Marker) error {
		attempt := m.Attempts + 1
		fmt.Fprintf(f, "run %s %d\n", m.Value, attempt)
		time.Sleep(15 * time.Millisecond)
		_, ks, _ := strings.Cut(string(m.Value), ":")
		k, _ := strconv.Atoi(ks)
		if k < 0 || attempt <= k {
			return fmt.Errorf("attempt %d fails", attempt)
		}
		fmt.Fprintf(f, "ok %s %d\n", m.Value, attempt)
		return nil
	}, opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := j.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

type logLine struct {
	kind, value string
	attempt     int
}

func readLog(t *testing.T, path string) []logLine {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []logLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) != 3 {
			continue // a line cut short by SIGKILL
		}
		a, _ := strconv.Atoi(fs[2])
		out = append(out, logLine{fs[0], fs[1], a})
	}
	return out
}

func TestJobKilledMidRunAndRestartedLosesNoMarkerAndDeadLettersNothingEarly(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts child processes")
	}
	e := newEnv(t, "crash", 3)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const maxAttempts = 4
	p, err := retry.NewParker(e.cl, retry.RetryBackoff(fastBackoff), retry.MaxAttempts(maxAttempts))
	if err != nil {
		t.Fatal(err)
	}
	// Records succeed on attempt k+1 (k = 1..3, the last on the final
	// allowed attempt) or always fail (k = -1).
	ks := []int{1, 2, 3, -1}
	want := map[string]int{}
	for i := 0; i < 40; i++ {
		k := ks[i%len(ks)]
		r := e.original(i, fmt.Sprintf("key%d", i))
		r.Value = []byte(fmt.Sprintf("r%d:%d", i, k))
		want[string(r.Value)] = k
		if err := p.Park(ctx, r, errors.New("consumer failed")); err != nil {
			t.Fatal(err)
		}
	}
	logPath := filepath.Join(t.TempDir(), "runs.log")
	env := []string{"RETRY_BOOTSTRAP=" + strings.Join(e.c.Bootstrap(), ","), "RETRY_TOPIC=" + e.topic,
		"RETRY_LOG=" + logPath, "RETRY_MAX=" + strconv.Itoa(maxAttempts)}

	first := startHelper(t, "job", env...)
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 30*time.Second, "the first job to make progress", func() bool { return len(readLog(t, logPath)) >= 30 })
	if err := first.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	killedAt := len(readLog(t, logPath))

	second := startHelper(t, "job", env...)
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = second.Process.Kill() }()
	adm := kadm.NewClient(e.cl)
	dlqTopic := e.topic + retry.DeadLetterSuffix
	alwaysFail := 0
	for _, k := range want {
		if k < 0 {
			alwaysFail++
		}
	}
	testkit.WaitFor(t, 60*time.Second, "every record to finish", func() bool {
		ok := map[string]bool{}
		for _, l := range readLog(t, logPath) {
			if l.kind == "ok" {
				ok[l.value] = true
			}
		}
		ends, err := adm.ListEndOffsets(ctx, dlqTopic)
		if err != nil {
			return false
		}
		dl, _ := ends.Lookup(dlqTopic, 0)
		return len(ok) == len(want)-alwaysFail && dl.Offset >= int64(alwaysFail)
	})
	if err := second.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := second.Wait(); err != nil {
		t.Fatalf("graceful stop of the second job: %v", err)
	}
	t.Logf("first job killed after %d log lines", killedAt)

	// Nothing lost: every record that can succeed did, on exactly the
	// attempt it was due to succeed on (attempt counts never jumped).
	okAt := map[string]int{}
	for _, l := range readLog(t, logPath) {
		if l.kind == "ok" {
			if prev, dup := okAt[l.value]; dup && prev != l.attempt {
				t.Errorf("%s succeeded on attempts %d and %d", l.value, prev, l.attempt)
			}
			okAt[l.value] = l.attempt
		}
	}
	for v, k := range want {
		if k >= 0 && okAt[v] != k+1 {
			t.Errorf("%s: succeeded on attempt %d, want %d", v, okAt[v], k+1)
		}
	}
	// Nothing dead-lettered early: only always-failing records, each after
	// exactly maxAttempts attempts.
	dead := map[string]bool{}
	for _, r := range readAll(t, e.c, dlqTopic) {
		m, err := retry.ParseMarker(r)
		if err != nil {
			t.Fatal(err)
		}
		if want[string(m.Value)] >= 0 {
			t.Errorf("%s was dead-lettered but succeeds on attempt %d", m.Value, want[string(m.Value)]+1)
		}
		if m.Attempts != maxAttempts || len(m.History) != maxAttempts {
			t.Errorf("%s dead-lettered after %d attempts (%d in history), want %d", m.Value, m.Attempts, len(m.History), maxAttempts)
		}
		dead[string(m.Value)] = true
	}
	if len(dead) != alwaysFail {
		t.Errorf("%d records dead-lettered, want %d", len(dead), alwaysFail)
	}
	// The graceful stop committed everything.
	var committed kadm.OffsetResponses
	var ends kadm.ListedOffsets
	testkit.WaitFor(t, 10*time.Second, "the committed and end offsets", func() bool {
		committed, err = adm.FetchOffsets(ctx, retry.DefaultGroup(e.topic+retry.RetrySuffix))
		if err == nil {
			ends, err = adm.ListEndOffsets(ctx, e.topic+retry.RetrySuffix)
		}
		if err == nil {
			err = ends.Error()
		}
		return err == nil
	})
	ends.Each(func(o kadm.ListedOffset) {
		c, _ := committed.Lookup(o.Topic, o.Partition)
		if c.At != o.Offset && o.Offset > 0 {
			// Resolutions are not written without key order, so the
			// last record of every partition is a marker the job finished.
			t.Errorf("partition %d: committed %d, end %d", o.Partition, c.At, o.Offset)
		}
	})
}

// helperConsumer consumes RETRY_TOPIC as group "app", parks records whose
// value starts with "fail", and commits after each batch. With
// RETRY_DIE_AFTER_PARK set it prints "parked PARTITION OFFSET" and kills
// itself right after the first park is acknowledged, before any commit.
func helperConsumer() int {
	bootstrap := strings.Split(os.Getenv("RETRY_BOOTSTRAP"), ",")
	topic := os.Getenv("RETRY_TOPIC")
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap...), kgo.ConsumeTopics(topic), kgo.ConsumerGroup("app"),
		kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(time.Second), kgo.HeartbeatInterval(100*time.Millisecond))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cl.Close()
	p, err := retry.NewParker(cl, retry.RetryBackoff(fastBackoff))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	die := os.Getenv("RETRY_DIE_AFTER_PARK") != ""
	end, _ := strconv.ParseInt(os.Getenv("RETRY_END"), 10, 64)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for next := int64(-1); next < end; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "consumer: timed out at offset", next)
			return 1
		}
		var perr error
		fs.EachRecord(func(r *kgo.Record) {
			next = r.Offset + 1
			if perr != nil || !strings.HasPrefix(string(r.Value), "fail") {
				return
			}
			if perr = p.Park(context.Background(), r, errors.New("handler failed")); perr == nil && die {
				fmt.Printf("parked %d %d\n", r.Partition, r.Offset)
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {}
			}
		})
		if perr != nil {
			fmt.Fprintln(os.Stderr, perr)
			return 1 // nothing of this batch is committed
		}
		if err := cl.CommitUncommittedOffsets(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return 0
}

func TestConsumerCommitsAFailedRecordOnlyAfterItsMarkerIsAcknowledged(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts child processes")
	}
	e := newEnv(t, "app", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	values := []string{"ok0", "ok1", "fail2", "ok3", "fail4", "ok5"}
	for _, v := range values {
		// One key, so one partition: offsets 0..5.
		if err := e.cl.ProduceSync(ctx, &kgo.Record{Topic: e.topic, Key: []byte("k"), Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"RETRY_BOOTSTRAP=" + strings.Join(e.c.Bootstrap(), ","), "RETRY_TOPIC=" + e.topic, "RETRY_END=" + strconv.Itoa(len(values))}

	dying := startHelper(t, "consumer", append(env, "RETRY_DIE_AFTER_PARK=1")...)
	out, _ := dying.Output() // killed by its own SIGKILL
	var part int32
	var off int64
	if _, err := fmt.Sscanf(string(out), "parked %d %d", &part, &off); err != nil {
		t.Fatalf("the consumer did not report its park: %q", out)
	}
	// The marker was acknowledged...
	markers := readAll(t, e.c, e.topic+retry.RetrySuffix)
	if len(markers) != 1 {
		t.Fatalf("%d markers after the crash, want 1", len(markers))
	}
	if m, err := retry.ParseMarker(markers[0]); err != nil || m.Offset != off || string(m.Value) != "fail2" {
		t.Fatalf("marker %+v (%v), want the record at offset %d", m, err, off)
	}
	// ...and the record's offset was not committed past.
	adm := kadm.NewClient(e.cl)
	committed, err := adm.FetchOffsets(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := committed.Lookup(e.topic, part); ok && c.At > off {
		t.Fatalf("the consumer committed %d before its crash, past the parked record %d", c.At, off)
	}

	// The restarted consumer reads the record again and parks it again.
	again := startHelper(t, "consumer", env...)
	if err := again.Run(); err != nil {
		t.Fatalf("restarted consumer: %v", err)
	}
	if committed, err = adm.FetchOffsets(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	if c, _ := committed.Lookup(e.topic, part); c.At != int64(len(values)) {
		t.Fatalf("restarted consumer committed %d, want %d", c.At, len(values))
	}

	// The job retries each failed record once: the duplicate marker left by
	// the crash is recognised.
	var mu sync.Mutex
	ran := map[string]int{}
	j, err := retry.NewJob(func(_ context.Context, m *retry.Marker) error {
		mu.Lock()
		ran[string(m.Value)]++
		mu.Unlock()
		return nil
	}, retry.Topic(e.topic), e.clientOpts(), retry.RetryBackoff(fastBackoff), retry.CommitInterval(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	stop := runJob(t, j)
	testkit.WaitFor(t, 20*time.Second, "both failed records to be retried", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return ran["fail2"] > 0 && ran["fail4"] > 0
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if ran["fail2"] != 1 || ran["fail4"] != 1 || len(ran) != 2 {
		t.Errorf("job runs %v, want fail2 and fail4 once each", ran)
	}
	if st := j.Stats(); st.Superseded != 1 {
		t.Errorf("superseded markers: %d, want 1 (the duplicate of fail2)", st.Superseded)
	}
}
