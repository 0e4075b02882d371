// Package safe keeps a panic in the broker's request code to that one request: a Go panic that
// no goroutine recovers ends the whole process, so every goroutine that runs request code (a
// connection's handler, a produce's per-partition append, the group coordinator's writer)
// defers Recover.
package safe

import (
	"fmt"
	"log/slog"
	"runtime/debug"
)

// Recover must be deferred (defer safe.Recover(...)) by the function whose panics it stops. If
// that function panics, Recover recovers: it logs the panic and the goroutine's stack with lg at
// Error, then calls onPanic with an error naming where the panic happened, for the caller to
// fail its request with (as UNKNOWN_SERVER_ERROR). Without a panic it does nothing.
func Recover(lg *slog.Logger, where string, onPanic func(error)) {
	if p := recover(); p != nil {
		report(lg, where, p, onPanic)
	}
}

// RecoverFunc is Recover for a place whose name costs something to build (it names a topic or
// an API): where is called only if there was a panic, so the request path allocates nothing.
func RecoverFunc(lg *slog.Logger, where func() string, onPanic func(error)) {
	if p := recover(); p != nil {
		report(lg, where(), p, onPanic)
	}
}

func report(lg *slog.Logger, where string, p any, onPanic func(error)) {
	lg.Error("recovered a panic in request code", "where", where, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
	onPanic(fmt.Errorf("panic in %s: %v", where, p))
}
