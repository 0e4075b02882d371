package server

// SetTestHooks installs hooks into request code (see testHooks) for the tests of package
// server_test: handle is called as each handler starts and its result when it returns.
func (b *Broker) SetTestHooks(handle func(key int16) (done func())) {
	b.hooks.Store(&testHooks{handle: handle})
}
