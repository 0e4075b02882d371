package wire

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
)

// Client sends requests over one connection and reads their responses, one at a time. It is the
// broker's own client for replica fetching; it is safe for concurrent use (requests serialize).
type Client struct {
	mu     sync.Mutex
	conn   net.Conn
	corr   int32
	fmt    *kmsg.RequestFormatter
	buf    []byte // the request being written
	rbuf   []byte // RequestReusing's response buffer
	maxLen int32
}

// Dialer opens connections (*net.Dialer is one).
type Dialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// Dial connects to addr through dialer; nil dials directly.
func Dial(ctx context.Context, dialer Dialer, addr, clientID string) (*Client, error) {
	if dialer == nil {
		dialer = &net.Dialer{Timeout: 5 * time.Second}
	}
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("wire: dial %s: %w", addr, err)
	}
	return &Client{
		conn:   conn,
		fmt:    kmsg.NewRequestFormatter(kmsg.FormatterClientID(clientID)),
		maxLen: 256 << 20,
	}, nil
}

// Request sends req (with its version already set) and decodes the response. The context's
// deadline, if any, bounds the round trip; a cancelled context closes the connection.
func (c *Client) Request(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	// The response is decoded into a fresh buffer: kmsg may keep sub-slices of it (record batches).
	return c.request(ctx, req, nil)
}

// RequestReusing is Request decoding the response in the client's own read buffer, which the
// next RequestReusing overwrites: the response's byte fields (a Fetch's record batches) are
// valid only until then. A replica fetcher, which writes each answer to its log before it asks
// again, allocates no buffer per answer this way. Request calls in between do not touch it.
func (c *Client) RequestReusing(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	return c.request(ctx, req, &c.rbuf)
}

// request is Request, reading the response into *buf (and keeping the buffer there) when buf
// is not nil.
func (c *Client) request(ctx context.Context, req kmsg.Request, buf *[]byte) (kmsg.Response, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.conn.SetDeadline(dl)
	} else {
		_ = c.conn.SetDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { _ = c.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	c.corr++
	c.buf = c.fmt.AppendRequest(c.buf[:0], req, c.corr)
	if _, err := c.conn.Write(c.buf); err != nil {
		return nil, fmt.Errorf("wire: write %s: %w", kmsg.NameForKey(req.Key()), err)
	}
	var into []byte
	if buf != nil {
		into = *buf
	}
	frame, err := ReadFrame(c.conn, c.maxLen, into)
	if err != nil {
		return nil, fmt.Errorf("wire: read %s response: %w", kmsg.NameForKey(req.Key()), err)
	}
	if buf != nil && cap(frame) <= maxKeptResponse {
		*buf = frame
	}
	return ParseResponse(frame, c.corr, req)
}

// maxKeptResponse bounds the read buffer a client keeps between RequestReusing calls: a larger
// answer is read into a buffer of its own, and not kept.
const maxKeptResponse = 1 << 20

// ParseResponse decodes a response frame (without its length prefix) to req, which must carry
// correlation id corr.
func ParseResponse(frame []byte, corr int32, req kmsg.Request) (kmsg.Response, error) {
	if len(frame) < 4 {
		return nil, fmt.Errorf("%w: %d-byte response", ErrMalformed, len(frame))
	}
	if got := int32(binary.BigEndian.Uint32(frame)); got != corr {
		return nil, fmt.Errorf("%w: correlation id %d, want %d", ErrMalformed, got, corr)
	}
	body := frame[4:]
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if resp.IsFlexible() && resp.Key() != 18 {
		if len(body) < 1 || body[0] != 0 {
			return nil, fmt.Errorf("%w: unexpected tagged fields in response header", ErrMalformed)
		}
		body = body[1:]
	}
	if err := resp.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("%w: %s response: %v", ErrMalformed, kmsg.NameForKey(req.Key()), err)
	}
	return resp, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Authenticate authenticates the connection with mechanism (SaslHandshake v1, then
// SaslAuthenticate until the mechanism is done), as a Kafka client does before its first
// request on a SASL listener.
func (c *Client) Authenticate(ctx context.Context, mechanism sasl.Mechanism) error {
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.SetVersion(1)
	hs.Mechanism = mechanism.Name()
	resp, err := c.Request(ctx, hs)
	if err != nil {
		return err
	}
	if err := kerr.ErrorForCode(resp.(*kmsg.SASLHandshakeResponse).ErrorCode); err != nil {
		return fmt.Errorf("wire: SASL handshake %s: %w", mechanism.Name(), err)
	}
	sess, msg, err := mechanism.Authenticate(ctx, c.conn.RemoteAddr().String())
	if err != nil {
		return fmt.Errorf("wire: SASL %s: %w", mechanism.Name(), err)
	}
	for {
		req := kmsg.NewPtrSASLAuthenticateRequest()
		req.SetVersion(1)
		req.SASLAuthBytes = msg
		resp, err := c.Request(ctx, req)
		if err != nil {
			return err
		}
		ar := resp.(*kmsg.SASLAuthenticateResponse)
		if err := kerr.ErrorForCode(ar.ErrorCode); err != nil {
			text := ""
			if ar.ErrorMessage != nil {
				text = *ar.ErrorMessage
			}
			return fmt.Errorf("wire: SASL %s: %w: %s", mechanism.Name(), err, text)
		}
		done, next, err := sess.Challenge(ar.SASLAuthBytes)
		if err != nil {
			return fmt.Errorf("wire: SASL %s: %w", mechanism.Name(), err)
		}
		if done {
			return nil
		}
		msg = next
	}
}
