package server

// TestHooks are hooks into request code for the tests of package server_test (see testHooks);
// each may be nil, and each may panic.
type TestHooks struct {
	// Handle is called as each handler starts, and its result, if not nil, when it returns.
	Handle func(key int16) (done func())
	// AppendPartition is called in a produce's goroutine for one partition, before the append.
	AppendPartition func(topic string, partition int32)
}

// SetTestHooks installs h into b's request code.
func (b *Broker) SetTestHooks(h TestHooks) {
	b.hooks.Store(&testHooks{handle: h.Handle, appendPartition: h.AppendPartition})
}
