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

func TestRecoverFuncNamesThePlaceOnlyOnPanic(t *testing.T) {
	var buf bytes.Buffer
	lg := slog.New(slog.NewTextHandler(&buf, nil))
	named := 0
	where := func() string { named++; return "produce to t-3" }
	var got error
	func() {
		defer RecoverFunc(lg, where, func(err error) { got = err })
		panic("boom")
	}()
	if got == nil || !strings.Contains(got.Error(), "panic in produce to t-3: boom") || !strings.Contains(buf.String(), "produce to t-3") {
		t.Fatalf("onPanic got %v; log:\n%s", got, buf.String())
	}
	named = 0
	func() {
		defer RecoverFunc(lg, where, func(error) { t.Fatal("onPanic called without a panic") })
	}()
	if named != 0 {
		t.Fatalf("where was called %d times without a panic", named)
	}
}
