package server

import "time"

// ApplyRetention applies retention now to this broker's replica of topic-p, as the
// maintenance loop does once a minute, and returns the segments it deleted.
func (b *Broker) ApplyRetention(topic string, p int32) (int, error) {
	return b.replica(topic, p).Log().ApplyRetention(time.Now())
}
