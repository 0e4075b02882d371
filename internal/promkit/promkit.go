// Package promkit holds what kafkaguard's packages share to expose
// Prometheus metrics: registering a package's collectors at once, and the
// set of live objects a collector reads when it is scraped.
package promkit

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers every collector with reg and returns the errors of
// those it refused, joined.
func Register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	var errs []error
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Sources is the set of objects a collector reads when scraped (the
// Dispatchers or Consumers that count into one Metrics). Its methods are
// safe for concurrent use.
type Sources[T comparable] struct {
	mu  sync.Mutex
	set map[T]struct{}
}

// Add adds s.
func (ss *Sources[T]) Add(s T) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.set == nil {
		ss.set = map[T]struct{}{}
	}
	ss.set[s] = struct{}{}
}

// Remove removes s.
func (ss *Sources[T]) Remove(s T) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.set, s)
}

// Snapshot returns the sources, so that they are read without the set's
// lock.
func (ss *Sources[T]) Snapshot() []T {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	out := make([]T, 0, len(ss.set))
	for s := range ss.set {
		out = append(out, s)
	}
	return out
}
