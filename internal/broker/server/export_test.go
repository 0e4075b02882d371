package server

import (
	"errors"
	"time"
)

// TestHooks are hooks into request code for the tests of package server_test (see testHooks);
// each may be nil, and each may panic.
type TestHooks struct {
	// Handle is called as each handler starts, and its result, if not nil, when it returns.
	Handle func(key int16) (done func())
	// Partition is called as a Produce (key 0) appends to, or a Fetch (key 1) reads from, one
	// partition.
	Partition func(key int16, topic string, partition int32)
}

// SetTestHooks installs h into b's request code.
func (b *Broker) SetTestHooks(h TestHooks) {
	b.hooks.Store(&testHooks{handle: h.Handle, partition: h.Partition})
}

// ApplyRetention applies retention to one partition's log now, as the maintenance loop does
// once a minute, and returns the number of segments deleted.
func (b *Broker) ApplyRetention(topic string, partition int32) (int, error) {
	r := b.replica(topic, partition)
	if r == nil {
		return 0, errors.New("server: no such replica")
	}
	return r.ApplyRetention(time.Now())
}
