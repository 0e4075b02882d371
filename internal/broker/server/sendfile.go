package server

// Zero-copy fetch: record batches go from the log files to the socket with sendfile(2), without
// passing through the broker's memory.
//
// The response is still encoded by kmsg, not by hand. Each partition that has data gets, in
// RecordBatches, a placeholder of exactly the data's length, so every length prefix and the
// frame size come out right. A placeholder is a window of one read-only buffer of random bytes
// that the broker keeps: partition i's window starts at byte i*markerLen, so its first markerLen
// bytes (its marker) differ from every other partition's. After encoding, the writer finds each
// placeholder by its marker with bytes.Index, searching only from the end of the previous one:
// placeholders are encoded in the order of the partitions, and what lies between two of them
// is a few dozen bytes of partition headers, so the search reads the headers only, never the
// data. Random markers of 16 bytes cannot be confused with header bytes by accident (2^-128),
// nor forged by a client, which does not know them. Then the frame is written as: encoded bytes
// up to the placeholder, the file ranges with sendfile, the encoded bytes after it, and so on.
//
// The encoder still copies each placeholder into the frame buffer (a memcpy); what zero-copy
// saves is the read of the data from the page cache into a fresh buffer, and its copy from the
// frame buffer into the socket.

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/log"
	"github.com/kafkaguard/kafkaguard/internal/broker/partition"
)

const (
	// markerLen is the length of the marker that starts each placeholder.
	markerLen = 16
	// maxSharedPlaceholder bounds the shared placeholder buffer; a larger placeholder (a client
	// asking for more than this from one partition) gets a buffer of its own for that fetch.
	maxSharedPlaceholder = 16 << 20
	// copyChunk is the buffer size of the pread+write fallback.
	copyChunk = 256 << 10
	// stallChunk is how much of a zero-copy response must go out within
	// Config.SendStallTimeout.
	stallChunk = 4 << 20
)

// errPlaceholderLost is returned when an encoded fetch response does not hold a placeholder
// where it must be; nothing of the frame has been written then.
var errPlaceholderLost = errors.New("server: zero-copy placeholder not found in the encoded fetch response")

// zeroCopy is a broker's zero-copy state: the shared placeholder bytes and the byte counters.
type zeroCopy struct {
	mu     sync.Mutex             // serializes growing buf
	buf    atomic.Pointer[[]byte] // random bytes, never written once published
	sent   atomic.Int64           // bytes sent with sendfile
	copied atomic.Int64           // bytes of file ranges sent by the pread+write fallback
	pool   sync.Pool              // *[]byte of copyChunk bytes for the fallback
}

// SendfileBytes returns how many bytes of record batches this broker has sent with sendfile(2)
// since it started. The pread+write fallback does not count.
func (b *Broker) SendfileBytes() int64 { return b.zc.sent.Load() }

// placeholder returns n read-only bytes whose first markerLen bytes are unique to index i
// within one response. n must be at least markerLen.
func (z *zeroCopy) placeholder(i, n int) []byte {
	need := i*markerLen + n
	if need > maxSharedPlaceholder {
		p := make([]byte, n)
		_, _ = rand.Read(p[:markerLen])
		return p
	}
	if p := z.buf.Load(); p != nil && len(*p) >= need {
		return (*p)[i*markerLen : need : need]
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	p := z.buf.Load()
	if p == nil || len(*p) < need {
		size := 64 << 10
		if p != nil {
			size = 2 * len(*p)
		}
		buf := make([]byte, min(max(size, need), maxSharedPlaceholder))
		_, _ = rand.Read(buf) // never fails (crypto/rand panics rather than return an error)
		p = &buf
		z.buf.Store(p)
	}
	return (*p)[i*markerLen : need : need]
}

// readZeroCopy reads one partition of a fetch as file ranges: it stores them in p.slices and
// returns the result with a placeholder of their total length as Records.
func (b *Broker) readZeroCopy(p *fetchPart, i int, req partition.FetchRequest) (partition.ReadResult, error) {
	res, ss, err := p.r.ReadSlices(req)
	var n int64
	for _, s := range ss {
		n += s.Len
	}
	switch {
	case n == 0:
		log.ReleaseSlices(ss)
	case n < markerLen:
		// Whole batches are never this small; should it happen, copy rather than fail.
		res.Records, err = readSlices(ss)
		log.ReleaseSlices(ss)
	default:
		p.slices = ss
		res.Records = b.zc.placeholder(i, int(n))
	}
	return res, err
}

// readSlices copies the bytes of ss.
func readSlices(ss []log.FileSlice) ([]byte, error) {
	var out []byte
	for _, s := range ss {
		b := make([]byte, s.Len)
		if _, err := s.File.ReadAt(b, s.Pos); err != nil {
			return nil, fmt.Errorf("server: read %s at byte %d: %w", s.File.Name(), s.Pos, err)
		}
		out = append(out, b...)
	}
	return out, nil
}

// releaseParts releases the file ranges the parts hold from an earlier read.
func releaseParts(parts []fetchPart) {
	for i := range parts {
		log.ReleaseSlices(parts[i].slices)
		parts[i].slices = nil
	}
}

// zeroCopyFetch is a Fetch response whose record batches are sent from the log files: it
// encodes as the embedded response (placeholders included) and carries the file ranges to send
// in the placeholders' stead.
type zeroCopyFetch struct {
	*kmsg.FetchResponse
	parts []zeroCopyPart
}

// zeroCopyPart is one partition's placeholder and the file ranges that replace it.
type zeroCopyPart struct {
	placeholder []byte
	slices      []log.FileSlice
}

func (r *zeroCopyFetch) release() {
	for _, p := range r.parts {
		log.ReleaseSlices(p.slices)
	}
}

// fetchResponse returns resp as it must be written: a zeroCopyFetch that owns the parts' file
// ranges when any part holds some, else resp itself.
func fetchResponse(resp *kmsg.FetchResponse, parts []fetchPart) kmsg.Response {
	var zc []zeroCopyPart
	for i := range parts {
		if p := &parts[i]; len(p.slices) > 0 {
			zc = append(zc, zeroCopyPart{placeholder: p.resp.RecordBatches, slices: p.slices})
			p.slices = nil
		}
	}
	if zc == nil {
		return resp
	}
	return &zeroCopyFetch{FetchResponse: resp, parts: zc}
}

// discardResponse releases what a response holds when it will not be written.
func discardResponse(resp kmsg.Response) {
	if zr, ok := resp.(*zeroCopyFetch); ok {
		zr.release()
	}
}

// writeResponse writes an encoded response frame to c. For a zero-copy fetch the placeholders
// in frame are replaced by their file ranges on the way, and the ranges are released.
func (b *Broker) writeResponse(c net.Conn, frame []byte, resp kmsg.Response) error {
	zr, ok := resp.(*zeroCopyFetch)
	if !ok {
		_, err := c.Write(frame)
		return err
	}
	defer zr.release()
	at, err := locatePlaceholders(frame, zr.parts)
	if err != nil {
		return err
	}
	cork(c, true)
	defer cork(c, false)
	// The response pins its segment files until it is sent: a client that stops reading must
	// not keep them (deleted by retention meanwhile) open for ever. Every piece of at most
	// stallChunk bytes gets SendStallTimeout to go out; a piece that does not fails the write,
	// which closes the connection.
	stalled := func() {
		if b.cfg.SendStallTimeout > 0 {
			_ = c.SetWriteDeadline(time.Now().Add(b.cfg.SendStallTimeout))
		}
	}
	defer func() { _ = c.SetWriteDeadline(time.Time{}) }()
	pos := 0
	for i, p := range zr.parts {
		stalled()
		if err := writeAll(c, frame[pos:at[i]]); err != nil {
			return err
		}
		for _, s := range p.slices {
			for off, end := s.Pos, s.Pos+s.Len; off < end; off += stallChunk {
				stalled()
				if err := b.zc.sendRange(c, s.File, off, min(end-off, stallChunk)); err != nil {
					return err
				}
			}
		}
		pos = at[i] + len(p.placeholder)
	}
	stalled()
	return writeAll(c, frame[pos:])
}

// writeAll writes p unless it is empty (an empty write on some connections, net.Pipe's, waits
// for the peer to read).
func writeAll(c net.Conn, p []byte) error {
	if len(p) == 0 {
		return nil
	}
	_, err := c.Write(p)
	return err
}

// locatePlaceholders returns where each part's placeholder starts in frame.
func locatePlaceholders(frame []byte, parts []zeroCopyPart) ([]int, error) {
	at := make([]int, len(parts))
	pos := 0
	for i, p := range parts {
		j := bytes.Index(frame[pos:], p.placeholder[:markerLen])
		if j < 0 || pos+j+len(p.placeholder) > len(frame) {
			return nil, fmt.Errorf("%w (partition %d of %d)", errPlaceholderLost, i, len(parts))
		}
		at[i] = pos + j
		pos = at[i] + len(p.placeholder)
	}
	return at, nil
}

// sendRange sends n bytes of f from offset off to c: with sendfile(2) when c is a socket that
// supports it, else (or if the kernel refuses) by pread and write. f's file position is not
// used, so other readers of f are not disturbed.
func (z *zeroCopy) sendRange(c net.Conn, f *os.File, off, n int64) error {
	sent, err := sendfile(c, f, off, n)
	z.sent.Add(sent)
	if err == nil {
		return nil
	}
	if !errors.Is(err, errors.ErrUnsupported) {
		return err
	}
	return z.copyRange(c, f, off+sent, n-sent)
}

// copyRange is sendRange without sendfile.
func (z *zeroCopy) copyRange(c net.Conn, f *os.File, off, n int64) error {
	bp, _ := z.pool.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, copyChunk)
		bp = &b
	}
	defer z.pool.Put(bp)
	for n > 0 {
		chunk := (*bp)[:min(n, int64(len(*bp)))]
		m, err := f.ReadAt(chunk, off)
		if m < len(chunk) {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("server: read %s at byte %d: %w", f.Name(), off, err)
		}
		if _, err := c.Write(chunk); err != nil {
			return err
		}
		z.copied.Add(int64(m))
		off += int64(m)
		n -= int64(m)
	}
	return nil
}
