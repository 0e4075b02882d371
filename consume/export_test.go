package consume

// Crash stops the consumer as a crashed process would: no more commits,
// running handlers cancelled, queued records dropped.
func (c *Consumer) Crash() { c.crash() }
