// Package testmain is what every test binary of this module does before its tests run. Under the
// race detector a Go program sleeps a second before it exits (GORACE's atexit_sleep_ms, 1000 by
// default), so that goroutines still running can report their races; with 35 test binaries, and
// the helper processes some tests start, that second per process was a fifth of
// `go test -race ./...` on two cores. Setup re-executes the test binary once with
// atexit_sleep_ms=100. Races are still caught: the testing package fails the test during which
// the detector reported one, a binary that saw a race still exits with the detector's status, and
// a goroutine a test left running that races within 100 ms of the binary's end is still reported
// (one that races later, up to a second, is not any more).
//
// A package without a TestMain of its own gets one that calls Main:
//
//	func TestMain(m *testing.M) { testmain.Main(m) }
package testmain

import (
	"os"
	"strings"
	"testing"
)

// Main runs m's tests after Setup and exits with their status.
func Main(m *testing.M) {
	Setup()
	os.Exit(m.Run())
}

// atexitSleepMs is the race detector's sleep before exit in the re-executed test binaries.
const atexitSleepMs = "100"

// Setup replaces the process with the same test binary, same arguments, with atexit_sleep_ms=100
// added to GORACE, when the race detector is on and GORACE does not set atexit_sleep_ms (so a
// user's own setting, and the re-executed binary, are left alone). Processes the tests start
// inherit the setting. It returns without doing anything when the detector is off or the binary
// cannot be re-executed (then the tests run as they are, a second slower).
func Setup() {
	if !raceEnabled || strings.Contains(os.Getenv("GORACE"), "atexit_sleep_ms=") {
		return
	}
	self, err := os.Executable()
	if err != nil {
		return
	}
	env := append(os.Environ(), "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms="+atexitSleepMs))
	reexec(self, os.Args, env) // returns only if it failed
}
