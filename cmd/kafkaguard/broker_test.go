package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/records"
	"github.com/kafkaguard/kafkaguard/internal/broker/wire"
	"github.com/kafkaguard/kafkaguard/internal/testkit"
)

// The broker tests run the real binary, built once per test run.
var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

// TestMain runs the tests, which mostly wait on clusters and child
// processes, four at a time (see testkit.RunParallel), then removes the
// built binary.
func TestMain(m *testing.M) {
	code := testkit.RunParallel(m, 4)
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func kafkaguardBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "kafkaguard-bin-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "kafkaguard")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// handedOut holds every port freePorts returned in this process: parallel tests must not be
// given the same one while the first has yet to listen on it (or has closed it to restart).
var handedOut struct {
	sync.Mutex
	ports map[int]bool
}

// freePorts returns a port p such that p..p+n-1 are free on 127.0.0.1 and were never returned
// before in this process. Ports come from below Linux's ephemeral range, so an outgoing
// connection cannot take one between the check and the broker's listen, and a restarted broker
// can listen on them again.
func freePorts(t *testing.T, n int) int {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.ports == nil {
		handedOut.ports = map[int]bool{}
	}
	for range 100 {
		base := 20000 + rand.IntN(12000-n)
		var lns []net.Listener
		ok := true
		for i := range n {
			if handedOut.ports[base+i] {
				ok = false
				break
			}
			ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(base+i)))
			if err != nil {
				ok = false
				break
			}
			lns = append(lns, ln)
		}
		for _, ln := range lns {
			_ = ln.Close()
		}
		if ok {
			for i := range n {
				handedOut.ports[base+i] = true
			}
			return base
		}
	}
	t.Fatalf("no %d consecutive free ports", n)
	return 0
}

// brokerProc is a running `kafkaguard broker` process.
type brokerProc struct {
	t     *testing.T
	cmd   *exec.Cmd
	ready string // the first stdout line
	log   string // stderr file

	mu    sync.Mutex
	extra []string // stdout lines after the first

	done chan struct{}
	err  error // cmd.Wait's, once done is closed
}

// startBroker runs `kafkaguard broker args...` with env added to the environment and waits for
// its first stdout line. The process is killed when the test ends if it still runs.
func startBroker(t *testing.T, env []string, args ...string) *brokerProc {
	t.Helper()
	cmd := exec.Command(kafkaguardBinary(t), append([]string{"broker"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	logPath := filepath.Join(t.TempDir(), "stderr.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &brokerProc{t: t, cmd: cmd, log: logPath, done: make(chan struct{})}
	first := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		n := 0
		for sc.Scan() {
			if n == 0 {
				first <- sc.Text()
			} else {
				p.mu.Lock()
				p.extra = append(p.extra, sc.Text())
				p.mu.Unlock()
			}
			n++
		}
		close(first)
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	select {
	case line, ok := <-first:
		if !ok {
			<-p.done
			t.Fatalf("kafkaguard broker %v exited before it was ready (%v):\n%s", args, p.err, p.stderr())
		}
		p.ready = line
	case <-time.After(60 * time.Second):
		t.Fatalf("kafkaguard broker %v printed nothing within 60s:\n%s", args, p.stderr())
	}
	return p
}

func (p *brokerProc) stderr() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}

// stop sends sig and returns the exit code once the process has exited.
func (p *brokerProc) stop(sig os.Signal) int {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Fatalf("broker did not exit within 30s of %v:\n%s", sig, p.stderr())
	}
	return p.cmd.ProcessState.ExitCode()
}

// bootstrap parses the ready line's broker addresses.
func (p *brokerProc) bootstrap() []string {
	p.t.Helper()
	for _, f := range strings.Fields(p.ready) {
		if v, ok := strings.CutPrefix(f, "bootstrap="); ok {
			return strings.Split(v, ",")
		}
	}
	p.t.Fatalf("no bootstrap in %q", p.ready)
	return nil
}

// control parses the ready line's control URL.
func (p *brokerProc) control() string {
	p.t.Helper()
	for _, f := range strings.Fields(p.ready) {
		if v, ok := strings.CutPrefix(f, "control="); ok {
			return v
		}
	}
	p.t.Fatalf("no control URL in %q", p.ready)
	return ""
}

func addrs(first, n int) string {
	out := make([]string, n)
	for i := range out {
		out[i] = "127.0.0.1:" + strconv.Itoa(first+i)
	}
	return strings.Join(out, ",")
}

// apiVersions checks that addr answers ApiVersions with no error.
func apiVersions(t *testing.T, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := wire.Dial(ctx, nil, addr, "broker-test")
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrApiVersionsRequest()
	req.SetVersion(3)
	resp, err := cl.Request(ctx, req)
	if err != nil {
		t.Fatalf("ApiVersions to %s: %v", addr, err)
	}
	if r := resp.(*kmsg.ApiVersionsResponse); r.ErrorCode != 0 || len(r.ApiKeys) == 0 {
		t.Fatalf("ApiVersions to %s: error %d, %d keys", addr, r.ErrorCode, len(r.ApiKeys))
	}
}

func TestBrokerPrintsReadyLineServesAndStopsCleanlyOnSignal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		brokers  int
		control  bool
		keepData bool
		sig      os.Signal
	}{
		{name: "one broker, temporary data, SIGINT", brokers: 1, sig: os.Interrupt},
		{name: "one broker, temporary data, SIGTERM", brokers: 1, sig: syscall.SIGTERM},
		{name: "three brokers with control API, SIGTERM", brokers: 3, control: true, sig: syscall.SIGTERM},
		{name: "one broker with --data, SIGINT", brokers: 1, keepData: true, sig: os.Interrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmp := t.TempDir() // the child's TMPDIR: where a temporary data directory goes
			port := freePorts(t, tt.brokers)
			args := []string{"--brokers", strconv.Itoa(tt.brokers), "--port", strconv.Itoa(port), "--log-level", "warn"}
			want := "ready bootstrap=" + addrs(port, tt.brokers)
			if tt.control {
				cport := freePorts(t, 1)
				args = append(args, "--control", "127.0.0.1:"+strconv.Itoa(cport))
				want += " control=http://127.0.0.1:" + strconv.Itoa(cport)
			}
			data := filepath.Join(t.TempDir(), "data")
			if tt.keepData {
				args = append(args, "--data", data)
			}
			p := startBroker(t, []string{"TMPDIR=" + tmp}, args...)
			if p.ready != want {
				t.Fatalf("ready line %q, want %q", p.ready, want)
			}
			for _, addr := range p.bootstrap() {
				apiVersions(t, addr)
			}
			if tt.control {
				resp, err := http.Get(p.control() + "/cluster")
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("GET /cluster: %s", resp.Status)
				}
			}
			entries, _ := os.ReadDir(tmp)
			switch {
			case tt.keepData && len(entries) != 0:
				t.Fatalf("with --data, TMPDIR holds %v while serving", entries)
			case !tt.keepData && (len(entries) != 1 || !strings.HasPrefix(entries[0].Name(), "kafkaguard-cluster-")):
				t.Fatalf("without --data, TMPDIR holds %v while serving; want one kafkaguard-cluster-* directory", entries)
			}

			if code := p.stop(tt.sig); code != 0 {
				t.Fatalf("exit code %d after %v, want 0:\n%s", code, tt.sig, p.stderr())
			}
			if len(p.extra) != 0 {
				t.Fatalf("stdout has more than the ready line: %q", p.extra)
			}
			if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
				t.Fatalf("temporary data left behind after exit: %v", entries)
			}
			if tt.keepData {
				for _, f := range []string{"cluster.json", "broker-0"} {
					if _, err := os.Stat(filepath.Join(data, f)); err != nil {
						t.Fatalf("--data lost %s after a clean exit: %v", f, err)
					}
				}
			}
			if _, err := net.DialTimeout("tcp", p.bootstrap()[0], time.Second); err == nil {
				t.Fatal("the port still accepts connections after exit")
			}
		})
	}
}

func TestBrokerRefusesBadFlagsWithUsageExitCode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		code int
		says string
	}{
		{"zero brokers", []string{"--brokers", "0"}, 2, "--brokers must be between 1 and 64"},
		{"too many brokers", []string{"--brokers", "65"}, 2, "--brokers must be between 1 and 64"},
		{"ports past 65535", []string{"--brokers", "3", "--port", "65534"}, 2, "leaves no room for 3 brokers"},
		{"negative port", []string{"--port", "-1"}, 2, "leaves no room"},
		{"min ISR zero", []string{"--min-insync-replicas", "0"}, 2, "--min-insync-replicas must be at least 1"},
		{"unknown flag", []string{"--nope"}, 2, "flag provided but not defined"},
		{"bad duration", []string{"--session-timeout", "soon"}, 2, "invalid value"},
		{"bad log level", []string{"--log-level", "loud"}, 2, `invalid value "loud" for flag --log-level`},
		{"stray argument", []string{"extra"}, 2, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := runBroker(context.Background(), tt.args, &out, &errb)
			if code != tt.code || !strings.Contains(errb.String(), tt.says) {
				t.Fatalf("runBroker(%q) = %d, stderr %q; want %d mentioning %q", tt.args, code, errb.String(), tt.code, tt.says)
			}
			if out.Len() != 0 {
				t.Fatalf("stdout %q, want nothing", out.String())
			}
		})
	}
}

func TestBrokerFailsWhenItsPortIsTaken(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	var out, errb bytes.Buffer
	code := runBroker(context.Background(), []string{"--port", strconv.Itoa(port), "--data", t.TempDir()}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "address already in use") {
		t.Fatalf("code %d, stderr %q; want 1 and address already in use", code, errb.String())
	}
	if out.Len() != 0 {
		t.Fatalf("printed %q although it never became ready", out.String())
	}
}

type acked struct {
	partition int32
	offset    int64
}

// readAll waits until each partition's end offset (its high watermark) reaches need[p], then
// reads topic's partitions from the start up to their end offsets and returns the value at each
// partition and offset.
func readAll(t *testing.T, boot []string, topic string, partitions int32, need map[int32]int64) map[acked]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var ends map[int32]int64
	testkit.WaitFor(t, 60*time.Second, fmt.Sprintf("the end offsets of %s to reach %v", topic, need), func() bool {
		ends = testkit.EndOffsets(ctx, t, boot, topic)
		for p := range partitions {
			if ends[p] < need[p] {
				return false
			}
		}
		return true
	}, func() string { return fmt.Sprintf("end offsets %v", ends) })
	got := map[acked]string{}
	for _, r := range testkit.ReadAll(ctx, t, boot, topic) {
		got[acked{r.Partition, r.Offset}] = string(r.Value)
	}
	return got
}

func TestBrokerKill9KeepsAckedRecordsAndCommittedOffsets(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs the broker binary through kill -9")
	}
	for _, brokers := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d brokers", brokers), func(t *testing.T) { kill9(t, brokers) })
	}
}

func kill9(t *testing.T, brokers int) {
	const topic, partitions = "acked", 3
	dir := t.TempDir()
	port := freePorts(t, brokers)
	args := []string{"--brokers", strconv.Itoa(brokers), "--port", strconv.Itoa(port), "--data", dir,
		"--session-timeout", "1s", "--replica-lag-max", "2s", "--min-insync-replicas", strconv.Itoa(min(brokers, 2)), "--log-level", "warn"}
	p := startBroker(t, nil, args...)
	boot := p.bootstrap()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	adm := testkit.Admin(t, boot)
	if _, err := adm.CreateTopic(ctx, partitions, int16(brokers), nil, topic); err != nil {
		t.Fatal(err)
	}

	prod, err := kgo.NewClient(kgo.SeedBrokers(boot...), kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()),
		kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		ackedAt  = map[string]acked{}
		nAcked   atomic.Int64
		inflight sync.WaitGroup
	)
	sem := make(chan struct{}, 32)
	pctx, stopProducing := context.WithCancel(ctx)
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		for i := 0; ; i++ {
			select {
			case sem <- struct{}{}:
			case <-pctx.Done():
				return
			}
			inflight.Add(1)
			prod.Produce(pctx, &kgo.Record{Value: fmt.Appendf(nil, "v%07d", i)}, func(r *kgo.Record, err error) {
				defer inflight.Done()
				<-sem
				if err == nil {
					mu.Lock()
					ackedAt[string(r.Value)] = acked{r.Partition, r.Offset}
					mu.Unlock()
					nAcked.Add(1)
				}
			})
		}
	}()

	// Commit two groups' offsets while the stream runs: each commits, per partition, the offset
	// after the newest record acked so far.
	committed := map[string]map[int32]int64{}
	waitAcked := func(n int64) {
		for nAcked.Load() < n {
			if ctx.Err() != nil {
				t.Fatalf("only %d records acked before the timeout:\n%s", nAcked.Load(), p.stderr())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	for i, at := range []int64{300, 600} {
		waitAcked(at)
		group := fmt.Sprintf("group-%d", i)
		offs := map[int32]int64{}
		mu.Lock()
		for _, a := range ackedAt {
			offs[a.partition] = max(offs[a.partition], a.offset+1)
		}
		mu.Unlock()
		var req kadm.Offsets
		for part, o := range offs {
			req.Add(kadm.Offset{Topic: topic, Partition: part, At: o, LeaderEpoch: -1, Metadata: group})
		}
		resp, err := adm.CommitOffsets(ctx, group, req)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			t.Fatalf("commit %s: %v", group, err)
		}
		committed[group] = offs
	}
	waitAcked(1200)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	stopProducing()
	<-produced
	prod.Close() // fails what is still buffered or in flight
	inflight.Wait()
	mu.Lock()
	total := len(ackedAt)
	mu.Unlock()
	t.Logf("%d records acked before kill -9", total)

	p2 := startBroker(t, nil, args...)
	if p2.ready != p.ready {
		t.Fatalf("restarted with ready line %q, want %q", p2.ready, p.ready)
	}
	need := map[int32]int64{}
	for _, at := range ackedAt {
		need[at.partition] = max(need[at.partition], at.offset+1)
	}
	got := readAll(t, boot, topic, partitions, need)
	seen := map[string]acked{}
	for at, v := range got {
		if prev, dup := seen[v]; dup {
			t.Errorf("value %s stored twice, at %v and %v", v, prev, at)
		}
		seen[v] = at
	}
	lost := 0
	for v, at := range ackedAt {
		if got[at] != v {
			lost++
			if lost <= 5 {
				t.Errorf("acked %s at partition %d offset %d; after restart that offset holds %q", v, at.partition, at.offset, got[at])
			}
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acked records lost across kill -9", lost, total)
	}

	adm2 := testkit.Admin(t, boot)
	for group, offs := range committed {
		resp, err := adm2.FetchOffsets(ctx, group)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			t.Fatalf("fetch offsets of %s: %v", group, err)
		}
		for part, want := range offs {
			o, ok := resp.Lookup(topic, part)
			if !ok || o.At != want || o.Metadata != group {
				t.Errorf("%s partition %d: committed %d before kill -9, OffsetFetch gives %+v", group, part, want, o)
			}
		}
	}
}

// control calls the control API and decodes a JSON answer into out (if not nil).
func control(t *testing.T, base, method, path string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("%s %s: %d %q: %v", method, path, resp.StatusCode, body, err)
		}
	}
	return resp.StatusCode
}

type brokerJSON struct {
	ID       int32  `json:"id"`
	Address  string `json:"address"`
	Alive    bool   `json:"alive"`
	Fenced   bool   `json:"fenced"`
	Isolated bool   `json:"isolated"`
	Paused   bool   `json:"replication_paused"`
}

type partitionJSON struct {
	Leader      int32   `json:"leader"`
	ISR         []int32 `json:"isr"`
	Replicas    []int32 `json:"replicas"`
	HW          int64   `json:"hw"`
	LeaderEpoch int32   `json:"leader_epoch"`
}

type replicaJSON struct {
	LEO         int64 `json:"leo"`
	HW          int64 `json:"hw"`
	LogStart    int64 `json:"log_start"`
	Leader      int32 `json:"leader"`
	LeaderEpoch int32 `json:"leader_epoch"`
}

type actionJSON struct {
	OK     bool   `json:"ok"`
	Broker int32  `json:"broker"`
	Action string `json:"action"`
	Error  string `json:"error"`
}

// startThree runs a 3-broker binary with the control API and quick failover, and creates topic
// with one partition on all three brokers and min.insync.replicas=2.
func startThree(t *testing.T, topic string) (*brokerProc, string) {
	t.Helper()
	port, cport := freePorts(t, 3), freePorts(t, 1)
	p := startBroker(t, nil, "--brokers", "3", "--port", strconv.Itoa(port), "--data", t.TempDir(),
		"--control", "127.0.0.1:"+strconv.Itoa(cport), "--session-timeout", "1s", "--replica-lag-max", "2s",
		"--min-insync-replicas", "2", "--log-level", "info")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := testkit.Admin(t, p.bootstrap())
	if _, err := adm.CreateTopic(ctx, 1, 3, nil, topic); err != nil {
		t.Fatal(err)
	}
	base := p.control()
	testkit.WaitFor(t, 30*time.Second, "topic has a leader with a full ISR", func() bool {
		var info partitionJSON
		return control(t, base, "GET", "/partitions/"+topic+"/0", &info) == http.StatusOK && info.Leader >= 0 && len(info.ISR) == 3 && info.HW >= 0
	})
	return p, base
}

func TestBrokerControlAPIOverHTTP(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs a 3-broker binary")
	}
	p, base := startThree(t, "ctl")
	boot := p.bootstrap()

	var cl struct {
		Brokers []brokerJSON `json:"brokers"`
	}
	if code := control(t, base, "GET", "/cluster", &cl); code != http.StatusOK {
		t.Fatalf("GET /cluster: %d", code)
	}
	for i, b := range cl.Brokers {
		if want := (brokerJSON{ID: int32(i), Address: boot[i], Alive: true}); b != want {
			t.Fatalf("GET /cluster broker %d = %+v, want %+v", i, b, want)
		}
	}
	if len(cl.Brokers) != 3 {
		t.Fatalf("GET /cluster lists %d brokers", len(cl.Brokers))
	}
	var info partitionJSON
	if code := control(t, base, "GET", "/partitions/ctl/0", &info); code != http.StatusOK || !slices.Contains(info.Replicas, info.Leader) || len(info.ISR) != 3 {
		t.Fatalf("GET /partitions/ctl/0: %d %+v", code, info)
	}
	follower := slices.DeleteFunc(slices.Clone(info.Replicas), func(id int32) bool { return id == info.Leader })[0]
	f := "/brokers/" + strconv.Itoa(int(follower))

	var e actionJSON
	for _, c := range []struct {
		method, path string
		code         int
	}{
		{"GET", "/partitions/nope/0", http.StatusNotFound},
		{"GET", "/partitions/ctl/7", http.StatusNotFound},
		{"GET", "/partitions/ctl/x", http.StatusBadRequest},
		{"POST", "/brokers/7/kill", http.StatusNotFound},
		{"POST", "/brokers/7/restart", http.StatusNotFound},
		{"POST", f + "/teleport", http.StatusNotFound},
		{"POST", f + "/restart", http.StatusConflict},
	} {
		e = actionJSON{}
		if code := control(t, base, c.method, c.path, &e); code != c.code || e.Error == "" {
			t.Fatalf("%s %s: %d %+v, want %d with an error", c.method, c.path, code, e, c.code)
		}
	}

	post := func(action string, want int) actionJSON {
		t.Helper()
		var a actionJSON
		if code := control(t, base, "POST", f+"/"+action, &a); code != want {
			t.Fatalf("POST %s/%s: %d %+v, want %d", f, action, code, a, want)
		}
		if want == http.StatusOK && (!a.OK || a.Broker != follower || a.Action != action) {
			t.Fatalf("POST %s/%s answered %+v", f, action, a)
		}
		return a
	}
	isr := func() []int32 {
		var info partitionJSON
		control(t, base, "GET", "/partitions/ctl/0", &info)
		return info.ISR
	}
	brokerState := func() brokerJSON {
		var cl struct {
			Brokers []brokerJSON `json:"brokers"`
		}
		control(t, base, "GET", "/cluster", &cl)
		return cl.Brokers[follower]
	}

	post("kill", http.StatusOK)
	if e := post("kill", http.StatusConflict); !strings.Contains(e.Error, "already dead") {
		t.Fatalf("second kill: %+v", e)
	}
	testkit.WaitFor(t, 30*time.Second, "killed follower is fenced and leaves the ISR", func() bool {
		b := brokerState()
		return !b.Alive && b.Fenced && !slices.Contains(isr(), follower)
	})
	post("restart", http.StatusOK)
	testkit.WaitFor(t, 30*time.Second, "restarted follower rejoins the ISR", func() bool {
		b := brokerState()
		return b.Alive && !b.Fenced && slices.Contains(isr(), follower)
	})

	post("pause-replication", http.StatusOK)
	if !brokerState().Paused {
		t.Fatal("GET /cluster does not show replication_paused")
	}
	prod := testkit.Client(t, boot, kgo.DefaultProduceTopic("ctl"), kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("while paused")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 30*time.Second, "paused follower leaves the ISR once it lags", func() bool { return !slices.Contains(isr(), follower) })
	post("resume-replication", http.StatusOK)
	testkit.WaitFor(t, 30*time.Second, "resumed follower rejoins the ISR", func() bool { return slices.Contains(isr(), follower) && !brokerState().Paused })

	post("isolate", http.StatusOK)
	testkit.WaitFor(t, 30*time.Second, "isolated follower is fenced", func() bool { b := brokerState(); return b.Isolated && b.Fenced })
	post("heal", http.StatusOK)
	testkit.WaitFor(t, 30*time.Second, "healed follower is back", func() bool {
		b := brokerState()
		return !b.Isolated && !b.Fenced && slices.Contains(isr(), follower)
	})
}

// produceRaw sends one acks=all batch of values to partition 0 of topic through addr and
// returns the partition's error code (0: acknowledged).
func produceRaw(t *testing.T, addr, topic string, timeout time.Duration, values ...string) int16 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout+10*time.Second)
	defer cancel()
	cl, err := wire.Dial(ctx, nil, addr, "broker-test")
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]records.Record, len(values))
	for i, v := range values {
		recs[i] = records.Record{Value: []byte(v)}
	}
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(9)
	req.Acks, req.TimeoutMillis = -1, int32(timeout/time.Millisecond)
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = records.Build(recs, time.Now().UnixMilli(), records.NoProducer)
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := cl.Request(ctx, req)
	if err != nil {
		t.Fatalf("produce to %s: %v", addr, err)
	}
	return resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
}

func values(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

func TestBrokerIsolatedLeaderIsReplacedAndTruncatesAfterHeal(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs a 3-broker binary")
	}
	const topic = "iso"
	p, base := startThree(t, topic)
	boot := p.bootstrap()
	var before partitionJSON
	control(t, base, "GET", "/partitions/iso/0", &before)
	old := before.Leader
	if code := produceRaw(t, boot[old], topic, 10*time.Second, values("committed", 10)...); code != 0 {
		t.Fatalf("acks=all produce to the healthy leader: %v", kerr.ErrorForCode(code))
	}

	// A follower that lagged under load may have left the ISR meanwhile; with
	// it out, the isolated leader would refuse the acks=all write before
	// appending it, and no other replica could be elected.
	testkit.WaitFor(t, 30*time.Second, "every replica back in the ISR before the isolation", func() bool {
		var info partitionJSON
		control(t, base, "GET", "/partitions/iso/0", &info)
		return info.Leader == old && len(info.ISR) == 3
	})
	var a actionJSON
	if code := control(t, base, "POST", fmt.Sprintf("/brokers/%d/isolate", old), &a); code != http.StatusOK {
		t.Fatalf("isolate: %d %+v", code, a)
	}
	// The isolated leader still takes the write but cannot replicate it: acks=all fails.
	code := produceRaw(t, boot[old], topic, 1500*time.Millisecond, values("unacked", 5)...)
	if code == 0 {
		t.Fatal("acks=all write to an isolated leader was acknowledged")
	}
	t.Logf("acks=all to the isolated leader: %v", kerr.ErrorForCode(code))
	var rep replicaJSON
	control(t, base, "GET", fmt.Sprintf("/brokers/%d/partitions/iso/0", old), &rep)
	if rep.LEO != 15 || rep.HW != 10 || rep.Leader != old {
		t.Fatalf("isolated leader's replica = %+v, want LEO 15 (5 uncommitted), HW 10, still leading in its own view", rep)
	}

	var after partitionJSON
	testkit.WaitFor(t, 30*time.Second, "the controller elects another leader", func() bool {
		control(t, base, "GET", "/partitions/iso/0", &after)
		return after.Leader >= 0 && after.Leader != old && !slices.Contains(after.ISR, old)
	})
	if after.LeaderEpoch <= before.LeaderEpoch {
		t.Fatalf("leader epoch %d after election, was %d", after.LeaderEpoch, before.LeaderEpoch)
	}
	if code := produceRaw(t, boot[after.Leader], topic, 10*time.Second, values("new-leader", 3)...); code != 0 {
		t.Fatalf("acks=all produce to the new leader: %v", kerr.ErrorForCode(code))
	}

	if code := control(t, base, "POST", fmt.Sprintf("/brokers/%d/heal", old), &a); code != http.StatusOK {
		t.Fatalf("heal: %d %+v", code, a)
	}
	var healed partitionJSON
	testkit.WaitFor(t, 30*time.Second, "the old leader rejoins the ISR as a follower with the new leader's log", func() bool {
		control(t, base, "GET", "/partitions/iso/0", &healed)
		control(t, base, "GET", fmt.Sprintf("/brokers/%d/partitions/iso/0", old), &rep)
		return slices.Contains(healed.ISR, old) && rep.Leader == after.Leader && rep.LEO == 13
	}, func() string {
		return fmt.Sprintf("partition %+v, old leader's replica %+v\n%s", healed, rep, p.stderr())
	})

	// Make the old leader lead again (kill the other two) and read what it holds: the
	// five unacknowledged records must be gone, everything acknowledged must be there.
	for _, id := range after.Replicas {
		if id != old {
			if code := control(t, base, "POST", fmt.Sprintf("/brokers/%d/kill", id), &a); code != http.StatusOK {
				t.Fatalf("kill %d: %d %+v", id, code, a)
			}
		}
	}
	testkit.WaitFor(t, 30*time.Second, "the old leader is elected again", func() bool {
		var info partitionJSON
		control(t, base, "GET", "/partitions/iso/0", &info)
		return info.Leader == old && info.HW == 13
	})
	got := readAll(t, []string{boot[old]}, topic, 1, map[int32]int64{0: 13})
	var vals []string
	for off := range int64(len(got)) {
		vals = append(vals, got[acked{0, off}])
	}
	want := append(values("committed", 10), values("new-leader", 3)...)
	if !slices.Equal(vals, want) {
		t.Fatalf("old leader holds %q after heal, want %q", vals, want)
	}
}
