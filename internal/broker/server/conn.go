package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/group"
	"github.com/kafkaguard/kafkaguard/internal/broker/safe"
	"github.com/kafkaguard/kafkaguard/internal/broker/wire"
)

func (b *Broker) acceptLoop() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			if b.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			b.lg.Warn("accept", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		b.connMu.Lock()
		if b.ctx.Err() != nil {
			b.connMu.Unlock()
			_ = c.Close()
			return
		}
		b.conns[c] = struct{}{}
		b.connMu.Unlock()
		b.wg.Add(1)
		go b.serveConn(c)
	}
}

// request is one decoded request with what its handler may need of the connection.
type request struct {
	hdr  wire.Header
	kreq kmsg.Request
	peer net.Addr
	auth *connAuth // nil on a listener without SASL
}

// serveConn answers the connection's requests one at a time, each before the next, as Kafka does
// per connection (so responses keep request order). Any framing or decoding failure closes the
// connection with a log line; nothing else is affected.
//
// Frames are read by a goroutine of their own (readFrames), one frame ahead of the handlers, so
// that the connection's context ends as soon as the client closes the connection or breaks the
// framing: a handler waiting for its request's data (a long-poll Fetch, an acks=all Produce)
// then returns at once instead of holding its goroutine, its watchers and its pinned segment
// files until its own timeout. (A close is noticed while a request runs unless the client has
// already sent the next one; then it is noticed when the running one ends.)
func (b *Broker) serveConn(c net.Conn) {
	defer b.wg.Done()
	ctx, cancel := context.WithCancel(b.ctx)
	frames := make(chan []byte)
	spare := make(chan []byte, 1)
	readerDone := make(chan struct{})
	lg := b.lg.With("peer", c.RemoteAddr().String())
	var auth *connAuth
	if b.sasl != nil {
		auth = &connAuth{}
	}
	go func() {
		defer close(readerDone)
		b.readFrames(ctx, cancel, c, frames, spare, auth, lg)
	}()
	defer func() {
		cancel()
		b.connMu.Lock()
		delete(b.conns, c)
		b.connMu.Unlock()
		_ = c.Close()
		<-readerDone
	}()
	host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
	var out []byte
	for frame := range frames {
		if !b.serveFrame(ctx, c, frame, host, auth, lg, &out) {
			return
		}
		if frame = keptBuffer(frame); frame != nil {
			// The reader's next buffer (a large one is not kept for the connection's life). The
			// slot may still hold the one before if the reader has not needed it yet: then
			// this one goes, rather than wait for a reader that may never read again.
			select {
			case spare <- frame:
			default:
			}
		}
	}
}

// readFrames reads the connection's request frames and hands each to serveConn through frames,
// reading into a buffer from spare when there is one. When reading fails (the client closed the
// connection, or sent a bad frame) it ends the connection's context and closes frames. Until
// the connection has authenticated (auth, when not nil), frames are bounded by
// maxUnauthenticatedRequest.
func (b *Broker) readFrames(ctx context.Context, cancel context.CancelFunc, c net.Conn, frames chan<- []byte, spare <-chan []byte, auth *connAuth, lg *slog.Logger) {
	defer close(frames)
	defer cancel()
	for {
		n, err := wire.ReadFrameSize(c, b.cfg.MaxRequestBytes)
		if err == nil && auth != nil && n > maxUnauthenticatedRequest && !auth.authenticated.Load() {
			err = fmt.Errorf("%w: %d-byte request before authentication (at most %d)", wire.ErrMalformed, n, maxUnauthenticatedRequest)
		}
		var frame []byte
		if err == nil {
			// The buffer is picked once the size is in: by then the handler of the frame before
			// has usually handed its buffer back (a client waits for the answer to send again).
			var buf []byte
			select {
			case buf = <-spare:
			default:
			}
			frame, err = wire.ReadFrameBody(c, n, buf)
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && ctx.Err() == nil {
				lg.Warn("closing connection: bad frame", "err", err)
			}
			return
		}
		select {
		case frames <- frame:
		case <-ctx.Done():
			return
		}
	}
}

// serveFrame decodes one request frame, runs its handler on ctx and writes the answer. It
// reports false when the connection must be closed, as it must after a panic (in encoding or
// writing the answer; the handler's own are turned into errors by safeHandle).
func (b *Broker) serveFrame(ctx context.Context, c net.Conn, frame []byte, host string, auth *connAuth, lg *slog.Logger, out *[]byte) (keep bool) {
	defer safe.Recover(lg, "serving a request", func(error) { keep = false })
	hdr, kreq, err := wire.ParseRequest(frame)
	if errors.Is(err, wire.ErrUnsupportedVersion) && hdr.Key == 18 {
		// A newer client's ApiVersions: answer with our versions so it can pick one.
		kreq, err = kmsg.NewPtrApiVersionsRequest(), nil
		kreq.SetVersion(hdr.Version)
	}
	if err != nil {
		lg.Warn("closing connection: undecodable request", "api_key", hdr.Key, "version", hdr.Version, "err", err)
		return false
	}
	if vr, ok := apiVersions[hdr.Key]; kreq.Key() != 18 && (!ok || hdr.Version < vr.min || hdr.Version > vr.max) {
		lg.Warn("closing connection: unsupported API or version", "api", kmsg.NameForKey(hdr.Key), "version", hdr.Version)
		return false
	}
	if auth != nil && !auth.authenticated.Load() && !servedBeforeAuth(hdr.Key) {
		// Kafka's SaslServerAuthenticator: nothing but the authentication is served first.
		lg.Warn("closing connection: request before authentication", "api", kmsg.NameForKey(hdr.Key))
		return false
	}
	resp, err := b.safeHandle(group.WithClient(ctx, hdr.ClientID, host), &request{hdr: hdr, kreq: kreq, peer: c.RemoteAddr(), auth: auth})
	if err != nil {
		lg.Error("closing connection: handler failed", "api", kmsg.NameForKey(hdr.Key), "version", hdr.Version, "err", err)
		return false
	}
	// The segment files a zero-copy answer pins are released however this ends (writeResponse
	// releases them once sent; releasing again does nothing).
	defer discardResponse(resp)
	if ctx.Err() != nil {
		// The client is gone (or the node stops): nobody reads the answer.
		return false
	}
	if resp == nil {
		return true // acks=0 produce: no response at all
	}
	if err := b.respond(c, out, hdr.CorrelationID, resp); err != nil {
		if b.ctx.Err() == nil {
			lg.Debug("write response", "err", err)
		}
		return false
	}
	// A refused handshake or authentication is the connection's last answer.
	return auth == nil || !auth.last
}

// testHooks let this package's tests watch and break request code; a production broker has
// none. Each hook may be nil.
type testHooks struct {
	// handle is called as a request's handler starts, in its goroutine (it may panic there);
	// the func it returns, if not nil, is called when the handler has returned.
	handle func(key int16) (done func())
	// partition is called as a Produce (key 0) appends to, or a Fetch (key 1) reads from, one
	// partition, in the goroutine that does it (it may panic there).
	partition func(key int16, topic string, partition int32)
}

// partitionHook calls the partition test hook, if any.
func (b *Broker) partitionHook(key int16, topic string, partition int32) {
	if h := b.hooks.Load(); h != nil && h.partition != nil {
		h.partition(key, topic, partition)
	}
}

// safeHandle runs handle, turning a panic in a handler into an error (logged with its stack):
// one bad request costs its connection, never the broker. (No response is built for it: the
// handler may have left any part of its response half-filled.)
func (b *Broker) safeHandle(ctx context.Context, r *request) (resp kmsg.Response, err error) {
	defer safe.RecoverFunc(b.lg, func() string { return kmsg.NameForKey(r.hdr.Key) + " handler" }, func(perr error) {
		resp, err = nil, fmt.Errorf("server: %w", perr)
	})
	if h := b.hooks.Load(); h != nil && h.handle != nil {
		if done := h.handle(r.hdr.Key); done != nil {
			defer done()
		}
	}
	return b.handle(ctx, r), nil
}

// handle runs the handler for the request's API. The context ends when the node stops.
func (b *Broker) handle(ctx context.Context, r *request) kmsg.Response {
	switch req := r.kreq.(type) {
	case *kmsg.ProduceRequest:
		return b.handleProduce(ctx, req)
	case *kmsg.FetchRequest:
		return b.handleFetch(ctx, req)
	case *kmsg.ListOffsetsRequest:
		return b.handleListOffsets(ctx, req)
	case *kmsg.MetadataRequest:
		return b.handleMetadata(ctx, req)
	case *kmsg.OffsetCommitRequest:
		return b.groups.OffsetCommit(ctx, req)
	case *kmsg.OffsetFetchRequest:
		return b.groups.OffsetFetch(ctx, req)
	case *kmsg.FindCoordinatorRequest:
		return b.handleFindCoordinator(ctx, req)
	case *kmsg.JoinGroupRequest:
		return b.groups.JoinGroup(ctx, req)
	case *kmsg.HeartbeatRequest:
		return b.groups.Heartbeat(ctx, req)
	case *kmsg.LeaveGroupRequest:
		return b.groups.LeaveGroup(ctx, req)
	case *kmsg.SyncGroupRequest:
		return b.groups.SyncGroup(ctx, req)
	case *kmsg.DescribeGroupsRequest:
		return b.groups.DescribeGroups(ctx, req)
	case *kmsg.ListGroupsRequest:
		return b.groups.ListGroups(ctx, req)
	case *kmsg.ApiVersionsRequest:
		return b.handleApiVersions(req)
	case *kmsg.CreateTopicsRequest:
		return b.handleCreateTopics(ctx, req)
	case *kmsg.DeleteTopicsRequest:
		return b.handleDeleteTopics(ctx, req)
	case *kmsg.InitProducerIDRequest:
		return b.handleInitProducerID(ctx, req)
	case *kmsg.AddPartitionsToTxnRequest:
		return b.handleAddPartitionsToTxn(ctx, req)
	case *kmsg.AddOffsetsToTxnRequest:
		return b.txns.AddOffsetsToTxn(ctx, req)
	case *kmsg.TxnOffsetCommitRequest:
		return b.handleTxnOffsetCommit(ctx, req)
	case *kmsg.EndTxnRequest:
		return b.handleEndTxn(ctx, req)
	case *kmsg.WriteTxnMarkersRequest:
		return b.handleWriteTxnMarkers(ctx, req)
	case *kmsg.DescribeTransactionsRequest:
		return b.txns.DescribeTransactions(ctx, req)
	case *kmsg.ListTransactionsRequest:
		return b.txns.ListTransactions(ctx, req)
	case *kmsg.DescribeProducersRequest:
		return b.handleDescribeProducers(ctx, req)
	case *kmsg.OffsetForLeaderEpochRequest:
		return b.handleOffsetForLeaderEpoch(ctx, req)
	case *kmsg.DescribeConfigsRequest:
		return b.handleDescribeConfigs(ctx, req)
	case *kmsg.CreatePartitionsRequest:
		return b.handleCreatePartitions(ctx, req)
	case *kmsg.DeleteGroupsRequest:
		return b.groups.DeleteGroups(ctx, req)
	case *kmsg.OffsetDeleteRequest:
		return b.groups.OffsetDelete(ctx, req)
	case *kmsg.DescribeClusterRequest:
		return b.handleDescribeCluster(ctx, req)
	case *kmsg.SASLHandshakeRequest:
		return b.handleSASLHandshake(r.auth, req)
	case *kmsg.SASLAuthenticateRequest:
		return b.handleSASLAuthenticate(r.auth, req)
	case *kmsg.DescribeUserSCRAMCredentialsRequest:
		return b.handleDescribeUserSCRAMCredentials(req)
	case *kmsg.AlterUserSCRAMCredentialsRequest:
		return b.handleAlterUserSCRAMCredentials(ctx, req)
	}
	// Unreachable: serveConn only passes APIs listed in apiVersions.
	return nil
}

// withTimeout bounds a handler by the request's own timeout.
func withTimeout(ctx context.Context, ms int32) (context.Context, context.CancelFunc) {
	if ms <= 0 {
		ms = 30000
	}
	return context.WithTimeout(ctx, time.Duration(ms)*time.Millisecond)
}
