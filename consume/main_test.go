package consume_test

import (
	"os"
	"testing"

	"github.com/kafkaguard/kafkaguard/internal/testkit"
)

// Most of this package's tests wait on a bundled cluster's timeouts: run
// four at a time (see testkit.RunParallel).
func TestMain(m *testing.M) { os.Exit(testkit.RunParallel(m, 4)) }
