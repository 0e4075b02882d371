package testmain

import (
	"os"
	"strings"
	"testing"
)

func TestMain(m *testing.M) { Main(m) }

// Under the race detector this binary runs re-executed by Setup, with atexit_sleep_ms in GORACE
// once: 0, or the value the caller's GORACE gave, which Setup leaves alone.
func TestTheBinaryRunsWithAtexitSleepSetOnce(t *testing.T) {
	if !raceEnabled {
		t.Skip("the race detector is off: Setup has nothing to do")
	}
	if g := os.Getenv("GORACE"); strings.Count(g, "atexit_sleep_ms=") != 1 {
		t.Fatalf("GORACE=%q: want atexit_sleep_ms set once", g)
	}
}
