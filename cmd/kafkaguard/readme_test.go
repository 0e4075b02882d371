package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/kafkaguard/kafkaguard/clientsec"
	"github.com/kafkaguard/kafkaguard/internal/testkit"
	"github.com/kafkaguard/kafkaguard/retry"
)

// How TestEveryREADMECommandRunsAsWritten treats each command of README.md's ```sh blocks.
//
// A command is a line (with its backslash-continued lines, or a here-document's body) that is
// not a comment. It is run by /bin/sh in a temporary directory with the kafkaguard binary built
// from this package first on $PATH. The only substitutions, applied to the command and to the
// README's lines that state its output:
//
//	go run ./cmd/kafkaguard   -> kafkaguard (the same package, built once by the tests)
//	ports 9092, 9093, 9094    -> free ports: the README's two brokers run at once here, and
//	and 9990                     another program may hold 9092; an entry's "on" names the
//	                             broker it talks to (one: --brokers 1, three: --brokers 3)
//	/tmp/kg                   -> a temporary directory
//	/etc/kafka/ca.pem         -> a CA certificate the test generates
//	kafka-1:9093              -> a one-broker bundled cluster the test starts with TLS (a
//	                             certificate of that CA) and SASL user "app" whose password is
//	                             the README's own "..."
//
// A command that cannot run here (a full verify matrix, the whole test suite, Apache Kafka,
// Docker, benchmarks) is listed with the reason and what runs it instead; a kafkaguard one then
// runs with --help appended, so every flag it names must exist. A command in README.md that
// this table does not list fails the test, and so does an entry that README.md no longer has.
type readmeCmd struct {
	cmd string // as README.md writes it, continuation lines joined by one space
	how readmeHow
	why string // help, notRun: why the command itself does not run here, and what runs it
	on  string // "one" or "three": the README broker whose ports 9092... stand for; "secured": kafka-1:9093

	exit     int                                                     // run: the exit status README.md states
	output   bool                                                    // run: the README lines that follow are its whole stdout
	sameAs   []string                                                // run: the equivalents README.md names; same stdout
	check    func(t *testing.T, r *readmeRun, stdout, stderr string) // run: what README.md says of the output
	slow     bool                                                    // run: seconds; runs while the others do
	stopWith bool                                                    // start: stop it with SIGTERM after the ready line, exit 0
}

type readmeHow int

const (
	runIt  readmeHow = iota // run it and check its exit status and output
	start                   // a long-lived process: its first stdout line is README's "# ready ..." comment
	set                     // a shell variable the later commands of its block use
	help                    // too slow or needs what is not here: run it with --help appended (every flag parses)
	notRun                  // cannot run here (why says what runs it)
)

var readmeCommands = []readmeCmd{
	// The bundled broker: started first, the other commands talk to it.
	{cmd: "go run ./cmd/kafkaguard broker --brokers 1 --port 9092 --data /tmp/kg", how: start, on: "one"},
	{cmd: "go run ./cmd/kafkaguard broker --brokers 3 --port 9092 --control 127.0.0.1:9990", how: start, on: "three"},

	// Two commands.
	{cmd: "go run ./cmd/kafkaguard verify", how: help,
		why: "the full matrix takes ~50 s; TestVerifyWithoutBootstrapRunsTheBundledClusterAndPrintsTheTable runs verify on the bundled cluster"},
	{cmd: "go test -race ./...", how: notRun, why: "the whole unit suite, this test included; .ci/run runs it"},

	// Faults against a real Kafka cluster.
	{cmd: `K="integration/kafka/kafka.sh --dir RUN_DIR"`, how: set},
	{cmd: `kafkaguard verify --bootstrap 127.0.0.1:24092,127.0.0.1:24093,127.0.0.1:24094 --schedules 4 --fault-exec "$K kill {broker}" --restart-exec "$K restart {broker} --no-wait" --pause-exec "$K pause {broker}" --resume-exec "$K resume {broker}"`,
		how: help, why: "needs Apache Kafka started by kafka.sh in RUN_DIR; .ci/run's real-Kafka step runs it"},

	// The report.
	{cmd: "kafkaguard verify --preset LeaderAck --fault pause-followers-then-kill-leader --report verify-report", slow: true, // one run, ~3 s
		check: func(t *testing.T, r *readmeRun, out, stderr string) {
			for _, want := range []string{"PRESET     FAULT ", "LeaderAck  pause-followers-then-kill-leader  2000 ", "allowed by acks=1"} {
				if !strings.Contains(out, want) {
					t.Errorf("verify --report: stdout lacks %q:\n%s", want, out)
				}
			}
			page, err := os.ReadFile(filepath.Join(r.dir, "verify-report", "index.html"))
			if err != nil || !bytes.Contains(page, []byte("<svg")) || !strings.Contains(stderr, "verify-report/index.html") {
				t.Errorf("verify --report: %v, %d bytes, stderr %q; want verify-report/index.html with charts, its path on stderr", err, len(page), stderr)
			}
		}},

	// The other commands.
	{cmd: "kafkaguard audit --bootstrap 127.0.0.1:9092 --topic orders", on: "one", exit: 1, check: checkAudit},
	{cmd: "kafkaguard partition --partitions 12 order-1 order-2", output: true},
	{cmd: "kafkaguard partition --partitions 12 --partitioner fnv1a order-1", output: true},
	{cmd: "kafkaguard retry-job --bootstrap 127.0.0.1:9092 --topic orders --create-topics", how: start, on: "three", stopWith: true},
	{cmd: "kafkaguard dlq list --bootstrap 127.0.0.1:9092 --topic orders", how: help, why: "needs dead letters in orders.dlq: TestDLQListsShowsAndReplaysOnce lists, shows and replays them on a bundled cluster"},
	{cmd: "kafkaguard dlq show --bootstrap 127.0.0.1:9092 --topic orders --partition 0 --offset 42", how: help, why: "needs a dead letter at orders.dlq 0@42: TestDLQListsShowsAndReplaysOnce shows one"},
	{cmd: "kafkaguard dlq replay --bootstrap 127.0.0.1:9092 --topic orders --error timeout --to source --dry-run", how: help, why: "needs dead letters: TestDLQListsShowsAndReplaysOnce replays (dry run, then twice, written once)"},
	{cmd: "kafkaguard bench --quick", slow: true, check: func(t *testing.T, _ *readmeRun, out, _ string) {
		if !strings.Contains(out, "CLAIM ") || !strings.Contains(out, "comparisons held") {
			t.Errorf("bench --quick printed no table of claims:\n%s", out)
		}
	}},

	// Secured clusters.
	{cmd: "cat > client.properties <<EOF", check: func(t *testing.T, r *readmeRun, _, _ string) {
		s, err := clientsec.LoadProperties(filepath.Join(r.dir, "client.properties"))
		if err != nil {
			t.Fatalf("the README's client.properties is refused: %v", err)
		}
		if s.Protocol != clientsec.SASLSSL || s.Mechanism != clientsec.ScramSHA512 || s.Username != "app" {
			t.Errorf("client.properties read as %+v", s)
		}
	}},
	// Authenticated (SCRAM over TLS): audit reads the one broker and fails its rules; retry-job
	// finds its topics missing (it is not given --create-topics), an error, exit status 1.
	{cmd: "kafkaguard audit --bootstrap kafka-1:9093 --command-config client.properties --topic orders", on: "secured", exit: 1,
		check: func(t *testing.T, _ *readmeRun, out, _ string) {
			if !strings.Contains(out, "FAIL  topic orders") || !strings.Contains(out, "broker 0") {
				t.Errorf("audit over SASL_SSL did not read the cluster:\n%s", out)
			}
		}},
	{cmd: "KAFKAGUARD_SASL_PASSWORD=... kafkaguard retry-job --bootstrap kafka-1:9093 --topic orders --sasl-mechanism SCRAM-SHA-512 --sasl-username app --tls-ca /etc/kafka/ca.pem",
		on: "secured", exit: 1, check: func(t *testing.T, r *readmeRun, out, stderr string) {
			if out != "" || !strings.Contains(stderr, retry.ErrMissingTopic.Error()) || !strings.Contains(stderr, "orders.retry") {
				t.Errorf("retry-job over SASL_SSL: stdout %q, stderr %q; want no ready line and the missing topics named", out, stderr)
			}
		}},

	// Help, version and exit status.
	{cmd: "kafkaguard --help", sameAs: []string{"kafkaguard -h", "kafkaguard help"}, check: func(t *testing.T, _ *readmeRun, out, _ string) {
		if !strings.Contains(out, "Available Commands:") {
			t.Errorf("--help lists no commands:\n%s", out)
		}
	}},
	{cmd: "kafkaguard help verify", sameAs: []string{"kafkaguard verify --help"}, check: func(t *testing.T, _ *readmeRun, out, _ string) {
		for _, want := range []string{"Usage:", "Flags:", "Examples:", "Exit status"} {
			if !strings.Contains(out, want) {
				t.Errorf("help verify lacks %q:\n%s", want, out)
			}
		}
	}},
	{cmd: "kafkaguard --version", sameAs: []string{"kafkaguard version"}, check: func(t *testing.T, _ *readmeRun, out, _ string) {
		if !regexp.MustCompile(`^kafkaguard (v\d+\.\d+\.\d+\S*|\(devel\))`).MatchString(out) {
			t.Errorf("--version printed %q, want the module version or (devel)", out)
		}
	}},

	// Integration with real Apache Kafka.
	{cmd: "go test ./integration/", how: notRun, why: "the integration suite (~50 s); .ci/run runs it"},
	{cmd: "KAFKAGUARD_TARGET=real go test ./integration/", how: notRun, why: "needs Java and Kafka's jars; .ci/run's real-Kafka step"},
	{cmd: "KAFKAGUARD_TARGET=real KAFKA_BOOTSTRAP=127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094 KAFKAGUARD_KILL_CMD='integration/kafka/kafka.sh kill {id}' KAFKAGUARD_RESTART_CMD='integration/kafka/kafka.sh restart {id}' KAFKAGUARD_PAUSE_CMD='integration/kafka/kafka.sh pause {id}' KAFKAGUARD_RESUME_CMD='integration/kafka/kafka.sh resume {id}' go test ./integration/",
		how: notRun, why: "needs a running Apache Kafka cluster; .ci/run's real-Kafka step"},
	{cmd: "(cd integration/testcontainers && go test ./...)", how: notRun, why: "needs Docker; .ci/run lists it as not run without a Docker engine"},
	{cmd: "KAFKAGUARD_TARGET=bundled go test -run '^$' -bench ProduceAcksAll -benchtime 100000x -count 4 ./integration/", how: notRun,
		why: "a benchmark; .ci/run runs every benchmark once"},
	{cmd: "KAFKAGUARD_TARGET=real    go test -run '^$' -bench ProduceAcksAll -benchtime 100000x -count 4 ./integration/", how: notRun,
		why: "a benchmark against Apache Kafka; .ci/run runs every benchmark once"},
}

// checkAudit checks what README.md says of audit against the one-broker cluster: each rule as
// pass/FAIL with the fix, exit status 1 on any failure, and --json the same report as JSON.
func checkAudit(t *testing.T, r *readmeRun, out, _ string) {
	for _, want := range []string{"\npass  broker 0", "FAIL  topic orders", "kafka-topics.sh --create --topic orders"} {
		if !strings.Contains("\n"+out, want) {
			t.Errorf("audit output lacks %q:\n%s", want, out)
		}
	}
	js, _, code := r.sh(t, "kafkaguard audit --bootstrap 127.0.0.1:9092 --topic orders --json", "one")
	var rep struct {
		Passed bool
		Checks []struct {
			Rule string
			Pass bool
		}
	}
	rules := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "pass  ") || strings.HasPrefix(line, "FAIL  ") {
			rules++
		}
	}
	if err := json.Unmarshal([]byte(js), &rep); err != nil || code != 1 || rep.Passed || len(rep.Checks) != rules {
		t.Errorf("audit --json: exit %d, %v, %+v; want exit 1 and the text report's checks:\n%s", code, err, rep, js)
	}
}

// readmeRun is one run of README.md's commands: the work directory and the brokers' ports.
type readmeRun struct {
	bin   string
	dir   string
	kgDir string
	caPEM string
	ports map[string]*strings.Replacer // "one", "three": README's ports to this run's; "secured"
}

func (r *readmeRun) subst(s, on string) string {
	s = strings.ReplaceAll(s, "go run ./cmd/kafkaguard", "kafkaguard")
	s = strings.ReplaceAll(s, "/tmp/kg", r.kgDir)
	s = strings.ReplaceAll(s, "/etc/kafka/ca.pem", r.caPEM)
	if rep := r.ports[on]; rep != nil {
		s = rep.Replace(s)
	}
	return s
}

func (r *readmeRun) shell(cmd, on string) *exec.Cmd {
	c := exec.Command("/bin/sh", "-c", r.subst(cmd, on))
	c.Dir = r.dir
	c.Env = append(os.Environ(), "PATH="+filepath.Dir(r.bin)+string(os.PathListSeparator)+os.Getenv("PATH"))
	return c
}

// sh runs cmd (after the substitutions) and returns its stdout, stderr and exit status.
func (r *readmeRun) sh(t *testing.T, cmd, on string) (string, string, int) {
	t.Helper()
	c := r.shell(cmd, on)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	if err != nil && c.ProcessState == nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	if c.ProcessState.ExitCode() != 0 && stderr.Len() > 0 {
		t.Logf("%s: stderr:\n%s", cmd, stderr.String())
	}
	return stdout.String(), stderr.String(), c.ProcessState.ExitCode()
}

// startReady starts cmd and returns it once it printed its first stdout line, which must be want.
func (r *readmeRun) startReady(t *testing.T, cmd, on, want string) *exec.Cmd {
	t.Helper()
	c := r.shell("exec "+cmd, on)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c.ProcessState == nil {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	})
	first := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			first <- sc.Text()
		}
		close(first)
		for sc.Scan() { // drain, so the process never blocks on stdout
		}
	}()
	select {
	case line, ok := <-first:
		if !ok {
			_ = c.Wait()
			t.Fatalf("%s exited before its ready line: %v\n%s", cmd, c.ProcessState, stderr.String())
		}
		if line != want {
			t.Fatalf("%s printed\n\t%s\nREADME.md says\n\t%s", cmd, line, want)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("%s printed nothing within 60 s:\n%s", cmd, stderr.String())
	}
	return c
}

// readmeLine is one command of a ```sh block, with what README.md says after it.
type readmeLine struct {
	line     int      // in README.md
	cmd      string   // continuation lines joined by one space; for a here-document, its first line
	script   string   // what the shell runs: the lines as written
	comments []string // "# ..." lines and the trailing comment, without "# "
	after    []string // lines after it that are neither commands in the table nor comments
}

var trailingComment = regexp.MustCompile(`\s+# `)

// readmeShellLines returns the commands of README.md's ```sh blocks, block by block, and fails
// on a fenced block in another shell language (which this test would not see).
func readmeShellLines(t *testing.T, readme string, known map[string]bool) [][]*readmeLine {
	var blocks [][]*readmeLine
	lines := strings.Split(readme, "\n")
	for i := 0; i < len(lines); i++ {
		lang, ok := strings.CutPrefix(lines[i], "```")
		if !ok {
			continue
		}
		end := i + 1
		for end < len(lines) && !strings.HasPrefix(lines[end], "```") {
			end++
		}
		switch strings.TrimSpace(lang) {
		case "sh":
		case "", "go":
			i = end
			continue
		default:
			t.Errorf("README.md line %d: a ```%s block: write shell commands in ```sh blocks so that this test runs them", i+1, lang)
			i = end
			continue
		}
		var block []*readmeLine
		var cur *readmeLine
		for j := i + 1; j < end; j++ {
			text := lines[j]
			trimmed := strings.TrimSpace(text)
			switch {
			case trimmed == "":
				continue
			case strings.HasPrefix(trimmed, "#"):
				if cur == nil {
					t.Errorf("README.md line %d: a comment before any command", j+1)
					continue
				}
				cur.comments = append(cur.comments, strings.TrimSpace(strings.TrimPrefix(trimmed, "#")))
				continue
			}
			l := &readmeLine{line: j + 1}
			var parts, script []string
			for {
				phys := lines[j]
				if loc := trailingComment.FindStringIndex(phys); loc != nil {
					l.comments = append(l.comments, strings.TrimSpace(phys[loc[1]:]))
					phys = phys[:loc[0]]
				}
				script = append(script, phys)
				cont := strings.HasSuffix(phys, "\\")
				parts = append(parts, strings.TrimSpace(strings.TrimSuffix(phys, "\\")))
				if !cont || j+1 >= end {
					break
				}
				j++
			}
			l.cmd = strings.Join(parts, " ")
			if strings.Contains(l.cmd, "<<EOF") {
				for j+1 < end {
					j++
					script = append(script, lines[j])
					if lines[j] == "EOF" {
						break
					}
				}
			}
			l.script = strings.Join(script, "\n")
			if !known[l.cmd] && cur != nil {
				cur.after = append(cur.after, trimmed)
				continue
			}
			cur = l
			block = append(block, l)
		}
		blocks = append(blocks, block)
		i = end
	}
	return blocks
}

// Every command in README.md's shell blocks runs as written against the bundled broker, with the
// exit status and the output README.md states (see readmeCmd for the few substitutions), or is
// listed in readmeCommands as not runnable here with the reason and what runs it instead.
func TestEveryREADMECommandRunsAsWritten(t *testing.T) {
	t.Parallel()
	readme := readREADME(t)
	known := map[string]bool{}
	byCmd := map[string]*readmeCmd{}
	for i := range readmeCommands {
		known[readmeCommands[i].cmd] = true
		byCmd[readmeCommands[i].cmd] = &readmeCommands[i]
	}
	found := map[string]*readmeLine{}
	prelude := map[string]string{} // command -> the variables its block set before it
	for _, block := range readmeShellLines(t, readme, known) {
		vars := ""
		for _, l := range block {
			e := byCmd[l.cmd]
			if e == nil {
				t.Errorf("README.md line %d: %q is neither run by this test nor listed in readmeCommands as not runnable here", l.line, l.cmd)
				continue
			}
			if len(l.after) > 0 && !e.output {
				t.Errorf("README.md line %d: lines after %q are not commands this test knows: %q", l.line, l.cmd, l.after)
			}
			found[l.cmd] = l
			prelude[l.cmd] = vars
			if e.how == set {
				vars += l.script + "\n"
			}
		}
	}
	for _, e := range readmeCommands {
		if found[e.cmd] == nil {
			t.Errorf("readmeCommands lists %q, which README.md no longer has", e.cmd)
		}
	}
	if t.Failed() {
		return
	}

	ca := testkit.NewCA(t)
	r := &readmeRun{bin: kafkaguardBinary(t), dir: t.TempDir(), kgDir: filepath.Join(t.TempDir(), "kg"),
		caPEM: writeSecret(t, "ca.pem", string(ca.PEM))}
	one, three, ctl := freePorts(t, 1), freePorts(t, 3), freePorts(t, 1)
	certFile, keyFile := ca.Issue(t, "broker").WriteFiles(t)
	secured := startBroker(t, nil, "--port", "0", "--log-level", "warn", "--tls-cert", certFile, "--tls-key", keyFile,
		"--sasl-user", "app:"+writeSecret(t, "app.password", "..."))
	port := func(n int) string { return strconv.Itoa(n) }
	r.ports = map[string]*strings.Replacer{
		"one": strings.NewReplacer(":9092", ":"+port(one), "--port 9092", "--port "+port(one)),
		"three": strings.NewReplacer(":9092", ":"+port(three), ":9093", ":"+port(three+1), ":9094", ":"+port(three+2),
			"--port 9092", "--port "+port(three), ":9990", ":"+port(ctl)),
		"secured": strings.NewReplacer("kafka-1:9093", secured.bootstrap()[0]),
	}
	var brokers []*exec.Cmd
	var slow sync.WaitGroup
	for _, e := range readmeCommands {
		l := found[e.cmd]
		script := prelude[e.cmd] + l.script
		switch e.how {
		case set, notRun:
			continue
		case help:
			t.Logf("README.md line %d: flags only (%s): %s", l.line, e.why, e.cmd)
			out, _, code := r.sh(t, script+" --help", e.on)
			if code != 0 || !strings.Contains(out, "Usage:") {
				t.Errorf("README.md line %d: %s --help: exit %d, want 0 and the usage (a flag the command does not have?):\n%s", l.line, e.cmd, code, out)
			}
		case start:
			var ready string
			for _, c := range l.comments {
				if strings.HasPrefix(c, "ready ") {
					ready = r.subst(c, e.on)
					break
				}
			}
			if ready == "" {
				t.Fatalf("README.md line %d: %s has no \"# ready ...\" line after it", l.line, e.cmd)
			}
			c := r.startReady(t, script, e.on, ready)
			if !e.stopWith {
				brokers = append(brokers, c)
				continue
			}
			if err := stopReadme(c); err != nil {
				t.Errorf("README.md line %d: %s after SIGTERM: %v, want exit status 0", l.line, e.cmd, err)
			}
		case runIt:
			if e.slow {
				slow.Add(1)
				go func() {
					defer slow.Done()
					r.runAndCheck(t, e, l, script)
				}()
				continue
			}
			r.runAndCheck(t, e, l, script)
		}
	}
	slow.Wait()
	checkControlTable(t, readme, "http://127.0.0.1:"+port(ctl))
	for _, c := range brokers { // README: SIGINT/SIGTERM shut it down cleanly
		if err := stopReadme(c); err != nil {
			t.Errorf("%s after SIGTERM: %v, want exit status 0", c.Args, err)
		}
	}
}

// stopReadme sends SIGTERM to a command started by startReady and waits for it to exit.
func stopReadme(c *exec.Cmd) error {
	if err := c.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		_ = c.Process.Kill()
		return fmt.Errorf("still running 30 s after SIGTERM")
	}
}

// checkControlTable checks README.md's table of the fault-control API against the control API
// of its --brokers 3 cluster, where retry-job created topic orders: each GET answers 200 with
// the JSON fields README.md shows (and no other), and each POST route exists — sent for broker
// 99 or a missing topic it answers 404 with {"error":...} naming them, not the router's 404 or
// "unknown action".
func checkControlTable(t *testing.T, readme, base string) {
	t.Helper()
	rows := regexp.MustCompile("(?m)^\\| `(GET|POST) ([^`]+)` \\| (.*) \\|$").FindAllStringSubmatch(readme, -1)
	if len(rows) < 10 {
		t.Fatalf("README.md's control API table has %d rows", len(rows))
	}
	for _, row := range rows {
		method, path, answer := row[1], row[2], row[3]
		if method == "GET" {
			path = strings.NewReplacer("{id}", "0", "{topic}", "orders", "{partition}", "0").Replace(path)
		} else {
			path = strings.NewReplacer("{id}", "99", "{topic}", "no-such-topic", "{partition}", "0").Replace(path)
		}
		req, err := http.NewRequest(method, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var got map[string]any
		jsonErr := json.Unmarshal(body, &got)
		if method == "POST" {
			msg, _ := got["error"].(string)
			if resp.StatusCode != http.StatusNotFound || jsonErr != nil || msg == "" || strings.HasPrefix(msg, "unknown action") {
				t.Errorf("README.md's %s %s: %d %s, want 404 and an error naming broker 99 or the missing topic", method, row[2], resp.StatusCode, body)
			}
			continue
		}
		example := regexp.MustCompile("`(\\{.*?\\})`").FindStringSubmatch(answer)
		var want map[string]any
		if resp.StatusCode != http.StatusOK || jsonErr != nil || example == nil || json.Unmarshal([]byte(example[1]), &want) != nil {
			t.Errorf("README.md's %s %s: %d %s; README.md shows %q", method, row[2], resp.StatusCode, body, example)
			continue
		}
		gotKeys, wantKeys := jsonKeys(got, nil), jsonKeys(want, nil)
		for k := range gotKeys {
			if !wantKeys[k] {
				t.Errorf("README.md's %s %s does not show field %q of the answer %s", method, row[2], k, body)
			}
		}
		for k := range want {
			if !gotKeys[k] {
				t.Errorf("README.md's %s %s shows field %q, not in the answer %s", method, row[2], k, body)
			}
		}
	}
}

// jsonKeys adds the object keys in v, at any depth, to keys.
func jsonKeys(v any, keys map[string]bool) map[string]bool {
	if keys == nil {
		keys = map[string]bool{}
	}
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			keys[k] = true
			jsonKeys(e, keys)
		}
	case []any:
		for _, e := range v {
			jsonKeys(e, keys)
		}
	}
	return keys
}

// README.md's section on the bundled broker lists its flags: every flag `kafkaguard broker` has
// is named there, and every flag named in its Flags and Security paragraphs exists.
func TestREADMEBrokerSectionNamesEveryBrokerFlag(t *testing.T) {
	t.Parallel()
	readme := readREADME(t)
	_, section, ok := strings.Cut(readme, "\n## The bundled broker\n")
	if !ok {
		t.Fatal("README.md has no section \"The bundled broker\"")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	section, _, _ = strings.Cut(section, "\n### ")
	flags := newBrokerCmd().Flags()
	flags.VisitAll(func(f *pflag.Flag) {
		if f.Name != "help" && !regexp.MustCompile("[\\s`]--"+regexp.QuoteMeta(f.Name)+"[\\s=`]").MatchString(section) {
			t.Errorf("README.md's section on the bundled broker does not name --%s", f.Name)
		}
	})
	for _, para := range strings.Split(section, "\n\n") {
		if !strings.HasPrefix(para, "Flags:") && !strings.HasPrefix(para, "Security:") {
			continue
		}
		for _, span := range regexp.MustCompile("`--[^`]*`").FindAllString(para, -1) { // other programs' flags do not start a span
			for _, m := range regexp.MustCompile(`--([a-z-]+)`).FindAllStringSubmatch(span, -1) {
				if flags.Lookup(m[1]) == nil {
					t.Errorf("README.md's section on the bundled broker names --%s, which kafkaguard broker does not have", m[1])
				}
			}
		}
	}
}

// runAndCheck runs a command of kind runIt and checks its exit status and output.
func (r *readmeRun) runAndCheck(t *testing.T, e readmeCmd, l *readmeLine, script string) {
	out, stderr, code := r.sh(t, script, e.on)
	if code != e.exit {
		t.Errorf("README.md line %d: %s: exit status %d, want %d\n%s%s", l.line, e.cmd, code, e.exit, out, stderr)
	}
	if e.output {
		want := r.subst(strings.Join(l.after, "\n"), e.on)
		if got := strings.TrimRight(out, "\n"); got != want {
			t.Errorf("README.md line %d: %s printed\n%s\nREADME.md says\n%s", l.line, e.cmd, got, want)
		}
	}
	for _, alt := range e.sameAs {
		if altOut, _, altCode := r.sh(t, alt, e.on); altOut != out || altCode != code {
			t.Errorf("README.md line %d: %s (which README.md says is the same) printed, with exit %d:\n%s\nnot\n%s", l.line, alt, altCode, altOut, out)
		}
	}
	if e.check != nil {
		e.check(t, r, out, stderr)
	}
}

// readREADME returns the repository's README.md.
func readREADME(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Every name of a kafkaguard package README.md uses (produce.NoLoss, consume.ReportMetrics,
// kafkatest.NewCluster, ...; in its Go blocks and its prose) is declared by that package.
func TestREADMENamesOnlyDeclaredPackageNames(t *testing.T) {
	t.Parallel()
	readme := readREADME(t)
	declared := map[string]map[string]bool{}
	for _, m := range regexp.MustCompile(`\b(produce|consume|retry|ordering|partitioner|verify|kafkatest|clientsec)\.([A-Z]\w*)`).FindAllStringSubmatch(readme, -1) {
		pkg, name := m[1], m[2]
		if declared[pkg] == nil {
			declared[pkg] = packageNames(t, filepath.Join("..", "..", pkg))
		}
		if !declared[pkg][name] {
			t.Errorf("README.md names %s.%s, which package %s does not declare", pkg, name, pkg)
		}
	}
	if len(declared) < 5 {
		t.Fatalf("README.md names %d kafkaguard packages", len(declared))
	}
}

// packageNames returns the exported top-level names of the package in dir (tests excluded).
func packageNames(t *testing.T, dir string) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("package %s: %v", dir, err)
	}
	fset := token.NewFileSet()
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil {
					names[d.Name.Name] = true
				}
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					switch spec := spec.(type) {
					case *ast.TypeSpec:
						names[spec.Name.Name] = true
					case *ast.ValueSpec:
						for _, n := range spec.Names {
							names[n.Name] = true
						}
					}
				}
			}
		}
	}
	return names
}

// Every public library package has a runnable Example (go doc shows it; go test checks its
// Output). Not libraries: cmd, examples (programs), internal, bench (benchmarks only) and
// integration (a scenario suite against real Kafka, shown by its README).
func TestEveryPublicPackageHasARunnableExample(t *testing.T) {
	t.Parallel()
	skip := map[string]bool{"cmd": true, "examples": true, "internal": true, "bench": true, "integration": true}
	root := filepath.Join("..", "..")
	checked := 0
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if skip[strings.Split(rel, string(filepath.Separator))[0]] || strings.HasPrefix(d.Name(), ".") && rel != "." || d.Name() == "testdata" {
			return filepath.SkipDir
		}
		code, _ := filepath.Glob(filepath.Join(path, "*.go"))
		library, example := false, false
		for _, f := range code {
			if !strings.HasSuffix(f, "_test.go") {
				library = library || filepath.Base(f) != "doc.go"
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			example = example || regexp.MustCompile(`(?s)\nfunc Example\w*\(\) \{.*?\n\t// Output:`).Match(b)
		}
		if library {
			checked++
			if !example {
				t.Errorf("package %s has no Example function with an // Output: comment", rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 9 {
		t.Fatalf("checked %d packages, want the 9 public ones at least", checked)
	}
}
