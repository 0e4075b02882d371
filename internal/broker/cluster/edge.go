package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
	"github.com/kafkaguard/kafkaguard/internal/broker/server"
)

// ErrLinkDown is what a broker sees on a link a fault has cut: a refused dial, a dropped
// connection, an unanswered controller call.
var ErrLinkDown = errors.New("cluster: link down")

// network is the edge around the cluster's brokers: each broker reaches the world only through
// the listener, dialer, controller link and clock its edge gives it, and every fault short of a
// kill or a power loss is a property of those links, as a network partition or a stalled process
// is to a real broker. No broker knows about faults.
type network struct {
	mu    sync.Mutex
	edges []*edge
	// blocked are the one-way partitions: blocked[[2]int32{a, b}] means a cannot reach b (its
	// dials to b are refused, its connections to b dropped), whatever b can do.
	blocked map[[2]int32]bool
	// addrs maps each broker's listening address to its id, so a dial knows whom it reaches.
	addrs map[string]int32
	// image is the controller's newest metadata (produce faults name topics, requests may use
	// topic ids).
	image func() *meta.Image
}

func newNetwork(n int, image func() *meta.Image) *network {
	nw := &network{blocked: map[[2]int32]bool{}, addrs: map[string]int32{}, image: image}
	for i := range n {
		e := &edge{id: int32(i), nw: nw, dialed: map[*brokerConn]struct{}{}}
		nw.edges = append(nw.edges, e)
	}
	return nw
}

// edge is one broker's links and the faults on them. The fault flags are guarded by network.mu;
// latency and the pause gate are read without it on every I/O.
type edge struct {
	id int32
	nw *network

	isolated bool // cut from the other brokers (both ways) and the controller
	ctrlCut  bool // cut from the controller only
	noFetch  bool // its own connections to other brokers (its replica fetchers) are cut

	latency atomic.Int64 // added to every message the broker receives, in nanoseconds
	jitter  atomic.Int64 // plus a random part below this, in nanoseconds
	// ctrlLatency and ctrlJitter are added to every message on its controller link only, both
	// ways (its calls to the controller and the metadata images back), in nanoseconds.
	ctrlLatency atomic.Int64
	ctrlJitter  atomic.Int64
	gate        gate // closed while the broker is paused

	dialed map[*brokerConn]struct{} // its open connections to other brokers

	ctrl    *controllerLink
	produce produceFaults // produce requests its listener refuses

	tls *server.TLS // if set, its listener and its dials speak TLS, beneath the edge
}

// reachLocked reports whether broker from may reach broker to.
func (nw *network) reachLocked(from, to int32) bool {
	f, t := nw.edges[from], nw.edges[to]
	return !f.isolated && !t.isolated && !f.noFetch && !nw.blocked[[2]int32{from, to}]
}

// ctrlReachLocked reports whether broker id and the controller reach each other.
func (e *edge) ctrlReachLocked() bool { return !e.isolated && !e.ctrlCut }

// change applies fn to the fault state under the lock, then drops every broker-to-broker
// connection the new state cuts and lets the controller links deliver what they held back.
func (nw *network) change(fn func()) {
	nw.mu.Lock()
	fn()
	var drop []*brokerConn
	for _, e := range nw.edges {
		for c := range e.dialed {
			if !nw.reachLocked(c.from, c.to) {
				drop = append(drop, c)
			}
		}
	}
	nw.mu.Unlock()
	for _, c := range drop {
		c.cut()
	}
	for _, e := range nw.edges {
		e.ctrl.flush()
	}
}

// reset clears every fault on broker id's links (it restarts with a clean edge).
func (nw *network) reset(id int32) {
	e := nw.edges[id]
	nw.change(func() {
		e.isolated, e.ctrlCut, e.noFetch = false, false, false
		for k := range nw.blocked {
			if k[0] == id || k[1] == id {
				delete(nw.blocked, k)
			}
		}
	})
	e.latency.Store(0)
	e.jitter.Store(0)
	e.ctrlLatency.Store(0)
	e.ctrlJitter.Store(0)
	e.resume()
}

// latencyNow is the added latency of one message to the broker: its latency plus a random part
// of its jitter.
func (e *edge) latencyNow() time.Duration { return drawLatency(&e.latency, &e.jitter) }

// ctrlLatencyNow is the added latency of one message on the broker's controller link: the
// broker's latency and the link's own.
func (e *edge) ctrlLatencyNow() time.Duration {
	return e.latencyNow() + drawLatency(&e.ctrlLatency, &e.ctrlJitter)
}

// drawLatency is latency plus a random part below jitter (both in nanoseconds).
func drawLatency(latency, jitter *atomic.Int64) time.Duration {
	d := time.Duration(latency.Load())
	if j := jitter.Load(); j > 0 {
		d += time.Duration(rand.Int64N(j))
	}
	return d
}

// delay waits out the added latency of one message to the broker, or until done is closed.
func (e *edge) delay(done <-chan struct{}) { sleepFor(e.latencyNow(), done) }

// sleepFor waits d, or until done is closed.
func sleepFor(d time.Duration, done <-chan struct{}) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-done:
	}
}

// pause freezes the broker: its links carry nothing and its clock stops.
func (e *edge) pause() { e.gate.close() }

// resume unfreezes the broker: held traffic flows and overdue timers fire.
func (e *edge) resume() {
	if e.gate.open() && e.ctrl != nil {
		e.ctrl.flush()
	}
}

// gate holds goroutines while it is closed: the edge's model of a stopped process (SIGSTOP).
type gate struct {
	mu sync.Mutex
	ch atomic.Pointer[chan struct{}] // nil while open; closed when the gate opens again
}

func (g *gate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ch.Load() == nil {
		ch := make(chan struct{})
		g.ch.Store(&ch)
	}
}

// open opens the gate, reporting whether it was closed.
func (g *gate) open() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	ch := g.ch.Swap(nil)
	if ch != nil {
		close(*ch)
	}
	return ch != nil
}

func (g *gate) closed() bool { return g.ch.Load() != nil }

// wait returns once the gate is open, or errLinkClosed when done is closed first.
func (g *gate) wait(done <-chan struct{}) error {
	ch := g.ch.Load()
	if ch == nil {
		return nil
	}
	select {
	case <-*ch:
		return nil
	case <-done:
		return net.ErrClosed
	}
}

// AfterFunc implements server.Clock: f runs once d has passed and the gate is open, so a paused
// broker's group coordinator expires no session and ends no rebalance until it resumes.
func (g *gate) AfterFunc(d time.Duration, f func()) *time.Timer {
	return time.AfterFunc(d, func() {
		if ch := g.ch.Load(); ch != nil {
			<-*ch
		}
		f()
	})
}

// After implements server.Clock: the timer fires once d has passed and the gate is open, so a
// paused broker's heartbeats, ISR checks and fetcher waits do not run until it resumes.
func (g *gate) After(d time.Duration) <-chan time.Time {
	out := make(chan time.Time, 1)
	time.AfterFunc(d, func() {
		if ch := g.ch.Load(); ch != nil {
			<-*ch
		}
		out <- time.Now()
	})
	return out
}

// listen opens broker id's listener on addr: the broker's side of every connection to it.
func (e *edge) listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	e.nw.mu.Lock()
	e.nw.addrs[ln.Addr().String()] = e.id
	e.nw.mu.Unlock()
	if e.tls != nil {
		// Beneath the edge, so that its faults read and hold back Kafka frames.
		ln = tls.NewListener(ln, e.tls.Server)
	}
	return &edgeListener{Listener: ln, e: e, done: make(chan struct{})}, nil
}

// edgeListener accepts nothing while its broker is paused (the kernel still completes the
// handshakes, as for a stopped process) and wraps each connection it accepts.
type edgeListener struct {
	net.Listener
	e    *edge
	once sync.Once
	done chan struct{}
}

func (l *edgeListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if err := l.e.gate.wait(l.done); err != nil {
		_ = c.Close()
		return nil, err
	}
	ec := newEdgeConn(c, l.e)
	ec.accepted = true
	return ec, nil
}

func (l *edgeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// edgeConn is one connection as its broker sees it, accepted or dialed: nothing moves while
// the broker is paused, and each frame the broker receives waits out its added latency. On an
// accepted connection the listener also refuses the produce requests a fault is armed for
// (producefault.go).
type edgeConn struct {
	net.Conn
	e        *edge
	accepted bool
	once     sync.Once
	done     chan struct{}
	frames   frameCounter // of what the broker reads

	// Owned by the broker's reader: what it reads next instead of the connection, and the
	// refusal whose reduced request follows the barrier in pend (next) or was read (refusal).
	pend, next []byte
	refusal    *refusal
	// The refusal whose answer the broker writes now, if any.
	capturing atomic.Pointer[refusal]

	rawOnce sync.Once
	raw     syscall.RawConn // a gatedRawConn, made by the first SyscallConn
	rawErr  error
}

func newEdgeConn(c net.Conn, e *edge) *edgeConn {
	return &edgeConn{Conn: c, e: e, done: make(chan struct{})}
}

func (c *edgeConn) Read(p []byte) (int, error) {
	if err := c.e.gate.wait(c.done); err != nil {
		return 0, err
	}
	if len(c.pend) == 0 && c.next != nil {
		// The broker read past the barrier: it has answered every earlier request.
		c.capturing.Store(c.refusal)
		c.pend, c.next = c.next, nil
	}
	if len(c.pend) == 0 && c.refusal != nil {
		// The completed answer goes out before the broker reads another request.
		select {
		case <-c.refusal.done:
		case <-c.done:
			return 0, net.ErrClosed
		}
		c.refusal = nil
	}
	if len(c.pend) > 0 {
		n := copy(p, c.pend)
		c.pend = c.pend[n:]
		return n, nil
	}
	start := c.frames.atStart()
	if start && c.accepted {
		p = p[:min(len(p), 4)] // a frame's length first: the listener may want the whole frame
	}
	n, err := c.Conn.Read(p)
	if start && c.accepted && n > 0 && c.e.produce.armed.Load() > 0 {
		// A produce fault is armed: read the whole frame to see whether it is one to refuse.
		if err := c.intercept(p[:n]); err != nil {
			return 0, err
		}
		n, err = copy(p, c.pend), nil
		c.pend = c.pend[n:]
	} else {
		c.frames.count(p[:n])
	}
	if start && n > 0 {
		c.e.delay(c.done) // a new message arrived: it travels the added latency
	}
	// What arrived while the broker was paused is read when it resumes.
	if err := c.e.gate.wait(c.done); err != nil {
		return 0, err
	}
	return n, err
}

func (c *edgeConn) Write(p []byte) (int, error) {
	if err := c.e.gate.wait(c.done); err != nil {
		return 0, err
	}
	if r := c.capturing.Load(); r != nil {
		return c.capture(r, p)
	}
	return c.Conn.Write(p)
}

// SyscallConn lets the broker send file ranges with sendfile(2) on the socket itself; the gate
// still holds each use of it while the broker is paused. The raw connection is made once per
// connection (the broker asks for it for every fetch answer it sends).
func (c *edgeConn) SyscallConn() (syscall.RawConn, error) {
	if err := c.e.gate.wait(c.done); err != nil {
		return nil, err
	}
	c.rawOnce.Do(func() {
		sc, ok := c.Conn.(syscall.Conn)
		if !ok {
			c.rawErr = errors.ErrUnsupported
			return
		}
		rc, err := sc.SyscallConn()
		c.raw, c.rawErr = gatedRawConn{rc, c}, err
	})
	return c.raw, c.rawErr
}

// gatedRawConn is an edge connection's socket for system calls: each use waits while the broker
// is paused, as the connection's reads and writes do.
type gatedRawConn struct {
	rc syscall.RawConn
	c  *edgeConn
}

func (g gatedRawConn) Control(f func(fd uintptr)) error {
	if err := g.c.e.gate.wait(g.c.done); err != nil {
		return err
	}
	return g.rc.Control(f)
}

func (g gatedRawConn) Read(f func(fd uintptr) bool) error {
	if err := g.c.e.gate.wait(g.c.done); err != nil {
		return err
	}
	return g.rc.Read(f)
}

func (g gatedRawConn) Write(f func(fd uintptr) bool) error {
	if err := g.c.e.gate.wait(g.c.done); err != nil {
		return err
	}
	return g.rc.Write(f)
}

func (c *edgeConn) Close() error {
	c.once.Do(func() { close(c.done) })
	return c.Conn.Close()
}

// frameCounter follows the Kafka frames (a 4-byte length, then that many bytes) of one
// direction of a connection, to tell where each message starts.
type frameCounter struct {
	left int64 // bytes left of the current frame's body
	hdr  int   // bytes of the next length prefix seen so far
	size [4]byte
}

func (f *frameCounter) atStart() bool { return f.left == 0 && f.hdr == 0 }

func (f *frameCounter) count(p []byte) {
	for len(p) > 0 {
		if f.left > 0 {
			k := min(f.left, int64(len(p)))
			f.left -= k
			p = p[k:]
			continue
		}
		k := copy(f.size[f.hdr:], p)
		f.hdr += k
		p = p[k:]
		if f.hdr == 4 {
			f.hdr = 0
			f.left = int64(uint32(f.size[0])<<24 | uint32(f.size[1])<<16 | uint32(f.size[2])<<8 | uint32(f.size[3]))
		}
	}
}

// dialer is broker id's way to the other brokers (its replica fetchers' connections).
type dialer struct{ e *edge }

var _ server.Dialer = dialer{}

// DialContext connects to addr unless a fault cuts this broker from the broker listening there.
func (d dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	e, nw := d.e, d.e.nw
	if err := e.gate.wait(ctx.Done()); err != nil {
		return nil, ctx.Err()
	}
	nw.mu.Lock()
	to, ok := nw.addrs[addr]
	if ok && !nw.reachLocked(e.id, to) {
		nw.mu.Unlock()
		return nil, fmt.Errorf("broker %d to broker %d (%s): %w", e.id, to, addr, ErrLinkDown)
	}
	nw.mu.Unlock()
	var nd net.Dialer
	raw, err := nd.DialContext(ctx, network, addr)
	if err == nil && e.tls != nil {
		raw = tls.Client(raw, e.tls.Client)
	}
	if err != nil || !ok {
		return raw, err
	}
	c := &brokerConn{edgeConn: newEdgeConn(raw, e), from: e.id, to: to}
	nw.mu.Lock()
	if !nw.reachLocked(e.id, to) {
		nw.mu.Unlock()
		_ = raw.Close()
		return nil, fmt.Errorf("broker %d to broker %d (%s): %w", e.id, to, addr, ErrLinkDown)
	}
	e.dialed[c] = struct{}{}
	nw.mu.Unlock()
	return c, nil
}

// brokerConn is a connection from one broker to another. When a fault cuts it, it is dropped at
// once, and nothing read from it after the cut reaches the broker (what the other side sent
// after the cut never arrived).
type brokerConn struct {
	*edgeConn
	from, to int32
	down     atomic.Bool
}

func (c *brokerConn) cut() {
	c.down.Store(true)
	_ = c.Close()
}

func (c *brokerConn) Read(p []byte) (int, error) {
	n, err := c.edgeConn.Read(p)
	if c.down.Load() {
		return 0, fmt.Errorf("broker %d to broker %d: %w", c.from, c.to, ErrLinkDown)
	}
	return n, err
}

func (c *brokerConn) Write(p []byte) (int, error) {
	if c.down.Load() {
		return 0, fmt.Errorf("broker %d to broker %d: %w", c.from, c.to, ErrLinkDown)
	}
	return c.edgeConn.Write(p)
}

func (c *brokerConn) Close() error {
	nw := c.e.nw
	nw.mu.Lock()
	delete(c.e.dialed, c)
	nw.mu.Unlock()
	return c.edgeConn.Close()
}
