package testkit

import (
	"flag"
	"strconv"
	"testing"

	"github.com/kafkaguard/kafkaguard/internal/testmain"
)

// RunParallel runs testmain.Setup, then m's tests with up to n parallel
// tests at a time (those that call t.Parallel) unless the command line sets
// -test.parallel, and returns m.Run's exit code. It is for packages whose
// tests mostly wait on a cluster's timeouts (sessions, elections, commit intervals): go test's
// default, GOMAXPROCS tests at a time, leaves such a package's CPU mostly
// idle on a 2-core machine. Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testkit.RunParallel(m, 4)) }
func RunParallel(m *testing.M, n int) int {
	testmain.Setup()
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		if err := flag.Set("test.parallel", strconv.Itoa(n)); err != nil {
			panic("testkit: " + err.Error())
		}
	}
	return m.Run()
}
