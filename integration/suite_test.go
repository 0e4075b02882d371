package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/kafkaguard/kafkaguard/internal/testkit"
)

// shared is the cluster every scenario and benchmark of this test binary
// uses, started on first use and closed by TestMain.
var shared struct {
	once sync.Once
	c    Cluster
	err  error
}

// TestMain runs the tests four at a time (see testkit.RunParallel), then
// closes the shared cluster.
func TestMain(m *testing.M) {
	code := testkit.RunParallel(m, 4)
	if shared.c != nil {
		if err := shared.c.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "integration: close %s cluster: %v\n", shared.c.Target(), err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

// sharedCluster returns the suite's cluster, skipping tb when the machine
// cannot run it (no java or mvn for real Kafka) and failing it on any other
// start error.
func sharedCluster(tb testing.TB) Cluster {
	tb.Helper()
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		start := time.Now()
		shared.c, shared.err = FromEnv(ctx)
		if shared.err == nil {
			fmt.Printf("integration: target=%s started in %v: %s\n", shared.c.Target(), time.Since(start).Round(time.Millisecond), shared.c.Describe())
		}
	})
	if errors.Is(shared.err, ErrUnavailable) {
		tb.Skipf("target=%s: %v", os.Getenv(EnvTarget), shared.err)
	}
	if shared.err != nil {
		tb.Fatalf("start cluster: %v", shared.err)
	}
	return shared.c
}

// TestScenarios runs the whole suite against the cluster chosen by
// KAFKAGUARD_TARGET; each subtest states the behaviour it checks.
//
// Against the bundled cluster each scenario gets a cluster of its own (it
// starts in well under a second) and the scenarios run in parallel: they
// mostly wait on their faults. Against a real cluster they share it, one
// after the other.
func TestScenarios(t *testing.T) {
	if target := os.Getenv(EnvTarget); target == "" || target == TargetBundled {
		for _, s := range Scenarios() {
			t.Run(s.Name, func(t *testing.T) {
				t.Parallel()
				runOn(t, ownBundled(t), s)
			})
		}
		return
	}
	c := sharedCluster(t)
	for _, s := range Scenarios() {
		Run(t, c, s)
	}
}

// ownBundled starts a bundled cluster (StartBundled) for t alone, closed
// when t ends.
func ownBundled(t *testing.T) Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := StartBundled(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close the bundled cluster: %v", err)
		}
	})
	return c
}
