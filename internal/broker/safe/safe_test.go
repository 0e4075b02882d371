package safe

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestRecoverTurnsAPanicIntoAnErrorAndLogsItsStack(t *testing.T) {
	var buf bytes.Buffer
	lg := slog.New(slog.NewTextHandler(&buf, nil))
	var got error
	func() {
		defer Recover(lg, "the test", func(err error) { got = err })
		panic("boom")
	}()
	if got == nil || !strings.Contains(got.Error(), "panic in the test: boom") {
		t.Fatalf("onPanic got %v", got)
	}
	out := buf.String()
	if !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "safe.TestRecoverTurnsAPanicIntoAnErrorAndLogsItsStack") {
		t.Fatalf("log line lacks the level or the stack:\n%s", out)
	}
	called := false
	func() {
		defer Recover(lg, "the test", func(error) { called = true })
	}()
	if called {
		t.Fatal("onPanic called without a panic")
	}
}
