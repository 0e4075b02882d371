// Package wire frames Kafka protocol messages on a byte stream: the 4-byte size prefix, the
// request and response headers, and the version-checked decoding of a request body with kmsg.
// It holds no codec of its own: bodies are encoded and decoded by franz-go's kmsg.
//
// The server side reads a frame with ReadFrame (bounded by a maximum size, so a hostile size
// prefix cannot make it allocate gigabytes), parses it with ParseRequest and answers with
// AppendResponse. Client is the minimal client side the broker's replica fetchers use.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Errors returned while reading and parsing frames. A server closes the connection on any of them.
var (
	// ErrFrameTooLarge is returned when a size prefix exceeds the allowed maximum
	// (socket.request.max.bytes in Kafka).
	ErrFrameTooLarge = errors.New("wire: frame size exceeds the maximum")
	// ErrMalformed is returned when a frame's header or body cannot be decoded.
	ErrMalformed = errors.New("wire: malformed request")
	// ErrUnknownAPI is returned for an API key kmsg does not know.
	ErrUnknownAPI = errors.New("wire: unknown API key")
	// ErrUnsupportedVersion is returned for a version of a known API that cannot be decoded.
	ErrUnsupportedVersion = errors.New("wire: unsupported API version")
)

// ReadFrame reads one size-prefixed frame. A frame larger than max, or a negative size, returns
// ErrFrameTooLarge before anything is allocated. buf is reused when it is large enough.
func ReadFrame(r io.Reader, max int32, buf []byte) ([]byte, error) {
	n, err := ReadFrameSize(r, max)
	if err != nil {
		return nil, err
	}
	return ReadFrameBody(r, n, buf)
}

// ReadFrameSize reads a frame's size prefix: ReadFrame's first half, for a reader that picks the
// buffer once it knows the size. A size larger than max, or negative, is ErrFrameTooLarge.
func ReadFrameSize(r io.Reader, max int32) (int32, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return 0, err
	}
	n := int32(binary.BigEndian.Uint32(size[:]))
	if n < 0 || n > max {
		return 0, fmt.Errorf("%w: %d bytes (max %d)", ErrFrameTooLarge, uint32(n), max)
	}
	return n, nil
}

// ReadFrameBody reads the n bytes of a frame whose size ReadFrameSize returned, into buf when it
// is large enough.
func ReadFrameBody(r io.Reader, n int32, buf []byte) ([]byte, error) {
	if int(n) <= cap(buf) {
		buf = buf[:n]
	} else {
		buf = make([]byte, n)
	}
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("wire: truncated frame of %d bytes: %w", n, err)
	}
	return buf, nil
}

// Header is a parsed request header.
type Header struct {
	Key           int16
	Version       int16
	CorrelationID int32
	ClientID      string
}

// PeekHeader parses only the fixed part of a request header (key, version, correlation id), so a
// server can answer an undecodable request by its correlation id.
func PeekHeader(frame []byte) (Header, bool) {
	if len(frame) < 8 {
		return Header{}, false
	}
	return Header{
		Key:           int16(binary.BigEndian.Uint16(frame[0:])),
		Version:       int16(binary.BigEndian.Uint16(frame[2:])),
		CorrelationID: int32(binary.BigEndian.Uint32(frame[4:])),
	}, true
}

// ParseRequest decodes a request frame (without its size prefix) with kmsg. It never panics: a
// decoder failure of any kind is returned as ErrMalformed.
func ParseRequest(frame []byte) (h Header, req kmsg.Request, err error) {
	h, ok := PeekHeader(frame)
	if !ok {
		return h, nil, fmt.Errorf("%w: %d-byte frame is shorter than a request header", ErrMalformed, len(frame))
	}
	req = kmsg.RequestForKey(h.Key)
	if req == nil {
		return h, nil, fmt.Errorf("%w %d", ErrUnknownAPI, h.Key)
	}
	if h.Version < 0 || h.Version > req.MaxVersion() {
		return h, nil, fmt.Errorf("%w: %s v%d (kmsg knows up to v%d)", ErrUnsupportedVersion, kmsg.NameForKey(h.Key), h.Version, req.MaxVersion())
	}
	req.SetVersion(h.Version)
	defer func() {
		if r := recover(); r != nil {
			req = nil
			err = fmt.Errorf("%w: %s v%d: decoder panicked: %v", ErrMalformed, kmsg.NameForKey(h.Key), h.Version, r)
		}
	}()
	rd := kbin.Reader{Src: frame[8:]}
	// ControlledShutdown v0 is the one request with header v0, which has no client id.
	if h.Key != 7 || h.Version != 0 {
		if cid := rd.NullableString(); cid != nil {
			h.ClientID = *cid
		}
	}
	if req.IsFlexible() {
		kmsg.SkipTags(&rd)
	}
	if err := rd.Complete(); err != nil {
		return h, nil, fmt.Errorf("%w: %s v%d header: %v", ErrMalformed, kmsg.NameForKey(h.Key), h.Version, err)
	}
	if err := req.ReadFrom(rd.Src); err != nil {
		return h, nil, fmt.Errorf("%w: %s v%d body: %v", ErrMalformed, kmsg.NameForKey(h.Key), h.Version, err)
	}
	return h, req, nil
}

// AppendResponse appends a size-prefixed response frame for correlation id corr to dst.
// ApiVersions responses always use header v0, as Kafka requires, so clients that sent a version
// the broker does not support can still read the answer.
func AppendResponse(dst []byte, corr int32, resp kmsg.Response) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(corr))
	if resp.IsFlexible() && resp.Key() != 18 {
		dst = append(dst, 0) // no tagged fields
	}
	dst = resp.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}
