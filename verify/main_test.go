package verify

import (
	"os"
	"testing"

	"github.com/kafkaguard/kafkaguard/internal/testkit"
)

// TestMain runs the tests, which mostly wait on their clusters' faults,
// four at a time (see testkit.RunParallel).
func TestMain(m *testing.M) { os.Exit(testkit.RunParallel(m, 4)) }
