// Package netcut is a client's network that a test or a fault schedule can cut, as the peers of a
// process that died see it: every connection closed at once and every later dial refused. A cut
// can also wait for a chosen Kafka request: it then lands at an exact step of a client's protocol
// (before a transaction's EndTxn, after its TxnOffsetCommit, ...), or right after a request was
// sent, so that the broker serves it and its answer is lost. A cut network can be healed. Instead
// of a cut, a stall keeps the connections open and holds every write until it is released: a
// process paused, not dead.
//
// A Dialer is used through its Dial method, which has the signature franz-go's kgo.Dialer takes.
// It is safe for concurrent use.
package netcut

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"slices"
	"sync"
)

// ErrCut is returned by Dial, and by writes on a connection, once the network is cut.
var ErrCut = errors.New("netcut: network cut")

// Dialer dials TCP until it is cut.
type Dialer struct {
	mu      sync.Mutex
	d       net.Dialer
	conns   []net.Conn
	cut     bool          // cut or stalled: the trigger fired
	stall   chan struct{} // non-nil: the trigger stalls writes until Release instead of cutting
	armed   bool          // a trigger waits for a request
	keys    []int16       // the requests that fire it
	when    moment        // where the trigger fires, relative to a request with one of keys
	seenKey bool
}

// Dial dials like a net.Dialer, or fails with ErrCut once the network is cut.
func (d *Dialer) Dial(ctx context.Context, network, host string) (net.Conn, error) {
	if d.isCut() {
		return nil, ErrCut
	}
	c, err := d.d.DialContext(ctx, network, host)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cut && d.stall == nil {
		c.Close()
		return nil, ErrCut
	}
	d.conns = append(d.conns, c)
	return &conn{Conn: c, d: d}, nil
}

// Cut closes every connection now and refuses every later dial.
func (d *Dialer) Cut() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fireLocked()
}

// CutAt arms a cut at a Kafka request: when a request with API key key is about to be written
// (after false), or at the first write after one was (after true). The connections are closed
// at that moment and the write fails.
func (d *Dialer) CutAt(key int16, after bool) { d.arm(nil, momentOf(after), key) }

// CutOnceSent arms a cut right after a request with API key key has been written: the request
// reaches the broker, which serves it, but its response is lost, as a client sees a broker die
// between receiving a request and answering it. Later dials are refused until Heal.
func (d *Dialer) CutOnceSent(key int16) { d.arm(nil, onceSent, key) }

// Heal ends a cut: later dials succeed again; the connections the cut closed stay closed. It
// does not release a stall.
func (d *Dialer) Heal() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stall == nil {
		d.cut, d.armed, d.seenKey = false, false, false
	}
}

// CutBeforeAny arms a cut before the first request with any of keys: a step that a client
// reaches by different requests against different brokers (franz-go sends AddOffsetsToTxn to a
// classic transaction coordinator and goes straight to TxnOffsetCommit under KIP-890's
// transaction.version 2).
func (d *Dialer) CutBeforeAny(keys ...int16) { d.arm(nil, beforeKey, keys...) }

// moment is where an armed trigger fires, relative to a request it waits for.
type moment int8

const (
	beforeKey moment = iota // as the request is about to be written
	afterKey                // at the first write after it
	onceSent                // as soon as it has been written
)

func momentOf(after bool) moment {
	if after {
		return afterKey
	}
	return beforeKey
}

func (d *Dialer) arm(stall chan struct{}, when moment, keys ...int16) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stall, d.armed, d.keys, d.when, d.seenKey = stall, true, keys, when, false
}

// StallAt arms a stall at a Kafka request, as CutAt places it: from then on every write waits
// until Release, on connections that stay open.
func (d *Dialer) StallAt(key int16, after bool) { d.arm(make(chan struct{}), momentOf(after), key) }

// Release lets the writes a stall holds go on; later writes are not held again. It does not
// undo a cut.
func (d *Dialer) Release() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stall != nil {
		close(d.stall)
		d.stall = nil
		d.cut, d.armed = false, false
	}
}

// Fired reports whether the armed cut or stall (or a Cut) happened; a released stall no longer
// counts.
func (d *Dialer) Fired() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cut
}

func (d *Dialer) isCut() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cut && d.stall == nil
}

// fireLocked cuts (or stalls) the network.
func (d *Dialer) fireLocked() {
	d.cut = true
	if d.stall != nil {
		return
	}
	for _, c := range d.conns {
		c.Close()
	}
	d.conns = nil
}

type conn struct {
	net.Conn
	d *Dialer
}

// Write fires an armed trigger when the request it waits for is written (a Kafka request starts
// with its length, then its API key), then fails once cut or waits while stalled.
func (c *conn) Write(b []byte) (int, error) {
	d := c.d
	d.mu.Lock()
	fireAfter := false
	if d.armed && !d.cut && len(b) >= 6 {
		key := int16(binary.BigEndian.Uint16(b[4:6]))
		switch match := slices.Contains(d.keys, key); {
		case d.when == beforeKey && match, d.when == afterKey && d.seenKey:
			d.fireLocked()
		case d.when == afterKey && match:
			d.seenKey = true
		case d.when == onceSent && match:
			fireAfter = true
		}
	}
	cut, stall := d.cut, d.stall
	d.mu.Unlock()
	switch {
	case cut && stall != nil:
		<-stall
	case cut:
		return 0, ErrCut
	}
	n, err := c.Conn.Write(b)
	if fireAfter {
		d.mu.Lock()
		if d.armed && !d.cut {
			d.fireLocked()
		}
		d.mu.Unlock()
	}
	return n, err
}
