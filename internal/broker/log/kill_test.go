package log

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"

	"github.com/kafkaguard/kafkaguard/internal/testmain"
)

const killHelperEnv = "KAFKAGUARD_LOG_KILL_HELPER_DIR"

// TestKillDuringAppendsLosesNoAcknowledgedBatch runs a child process that
// appends (rolling segments often) and reports each acknowledged end
// offset, kills it with SIGKILL at a different point each round, and
// checks that the reopened log holds every acknowledged batch, valid and
// contiguous.
func TestKillDuringAppendsLosesNoAcknowledgedBatch(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	acked := int64(0)
	for round, killAfter := range []int{50, 400, 1, 900} {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), killHelperEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		for n := 0; n < killAfter && sc.Scan(); n++ {
			if v, err := strconv.ParseInt(sc.Text(), 10, 64); err == nil {
				acked = v
			}
		}
		_ = cmd.Process.Kill() // SIGKILL
		_ = cmd.Wait()

		l, err := Open(dir, killCfg, nil)
		if err != nil {
			t.Fatalf("round %d: Open after kill: %v", round, err)
		}
		if l.EndOffset() < acked {
			t.Fatalf("round %d: EndOffset %d, but offsets up to %d were acknowledged", round, l.EndOffset(), acked)
		}
		checkContiguous(t, readAll(t, l), 0, l.EndOffset())
		acked = l.EndOffset()
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

var killCfg = Config{SegmentBytes: 16 << 10, IndexIntervalBytes: 1024}

// TestMain runs the child process of the test above when started by it (killHelperEnv set),
// and the tests otherwise.
func TestMain(m *testing.M) {
	testmain.Setup()
	if dir := os.Getenv(killHelperEnv); dir != "" {
		killHelper(dir)
	}
	os.Exit(m.Run())
}

// killHelper appends to the log in dir until it is killed, printing each acknowledged end offset.
func killHelper(dir string) {
	l, err := Open(dir, killCfg, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	w := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		// Multi-batch appends of varying size, some rolling mid-append.
		var in []byte
		for j := range 1 + i%3 {
			in = append(in, buildBatch(spec{records: 1 + j, valueSize: 100 * (i % 7), ts: int64(i)})...)
		}
		if _, err := l.AppendLeader(in, int32(i/200)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Fprintln(w, l.EndOffset())
		w.Flush()
	}
}
