package netcut

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// request is a Kafka request frame's start: length, API key, version.
func request(key int16) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint32(b, 4)
	binary.BigEndian.PutUint16(b[4:], uint16(key))
	return b
}

func listener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				buf := make([]byte, 64)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestCutAtClosesBeforeTheRequestOrAfterIt(t *testing.T) {
	t.Parallel()
	addr := listener(t)
	for _, tc := range []struct {
		after    bool
		writesOK int // writes that pass before the cut: 25, 26(, 0)
	}{{false, 1}, {true, 2}} {
		var d Dialer
		c, err := d.Dial(context.Background(), "tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		d.CutAt(26, tc.after)
		ok := 0
		for _, key := range []int16{25, 26, 0} {
			if _, err := c.Write(request(key)); err == nil {
				ok++
			} else if !errors.Is(err, ErrCut) {
				t.Fatalf("write of key %d: %v, want ErrCut", key, err)
			}
		}
		if ok != tc.writesOK || !d.Fired() {
			t.Fatalf("after=%v: %d writes passed (fired %v), want %d", tc.after, ok, d.Fired(), tc.writesOK)
		}
		if _, err := d.Dial(context.Background(), "tcp", addr); !errors.Is(err, ErrCut) {
			t.Fatalf("dial after the cut: %v, want ErrCut", err)
		}
	}
}

func TestStallHoldsWritesUntilRelease(t *testing.T) {
	t.Parallel()
	addr := listener(t)
	var d Dialer
	c, err := d.Dial(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	d.StallAt(28, false)
	done := make(chan error, 1)
	go func() { _, err := c.Write(request(28)); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("the stalled write returned %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	if !d.Fired() {
		t.Fatal("the stall did not fire")
	}
	d.Release()
	if err := <-done; err != nil {
		t.Fatalf("the released write: %v", err)
	}
	if _, err := c.Write(request(28)); err != nil {
		t.Fatalf("a write after the release: %v", err)
	}
}

func TestCutBeforeAnyFiresOnTheFirstOfItsKeys(t *testing.T) {
	t.Parallel()
	addr := listener(t)
	var d Dialer
	c, err := d.Dial(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	d.CutBeforeAny(25, 28)
	if _, err := c.Write(request(0)); err != nil {
		t.Fatalf("a Produce before the cut: %v", err)
	}
	if _, err := c.Write(request(28)); !errors.Is(err, ErrCut) || !d.Fired() {
		t.Fatalf("TxnOffsetCommit (no AddOffsetsToTxn before it): %v (fired %v), want ErrCut", err, d.Fired())
	}
}

func TestCutOnceSentDeliversTheRequestThenCutsUntilHealed(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c) // until the cut closes the connection
		got <- b
	}()
	var d Dialer
	c, err := d.Dial(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	d.CutOnceSent(26)
	for _, key := range []int16{25, 26} {
		if _, err := c.Write(request(key)); err != nil {
			t.Fatalf("write of key %d: %v, want it sent", key, err)
		}
	}
	if !d.Fired() {
		t.Fatal("the cut did not fire once key 26 was sent")
	}
	if _, err := c.Write(request(0)); !errors.Is(err, ErrCut) {
		t.Fatalf("write after the cut: %v, want ErrCut", err)
	}
	select {
	case b := <-got:
		if len(b) != 16 || binary.BigEndian.Uint16(b[12:]) != 26 {
			t.Fatalf("the broker side read %x, want requests 25 and 26 and nothing after", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the connection was not closed by the cut")
	}
	if _, err := d.Dial(context.Background(), "tcp", ln.Addr().String()); !errors.Is(err, ErrCut) {
		t.Fatalf("dial after the cut: %v, want ErrCut", err)
	}
	d.Heal()
	if d.Fired() {
		t.Fatal("Fired after Heal")
	}
	c2, err := d.Dial(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial after Heal: %v", err)
	}
	c2.Close()
}
