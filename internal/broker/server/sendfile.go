package server

// Zero-copy fetch: record batches go from the log files to the socket with sendfile(2), without
// passing through the broker's memory.
//
// A zero-copy Fetch response encodes itself (zeroCopyFetch.AppendTo) exactly as kmsg encodes
// FetchResponse, field by field, except that the records of a partition served from the files
// stop after their length prefix (an int32, or the compact uvarint of flexible versions), which
// already counts the file ranges; the encoder notes where in the frame each partition's ranges
// belong, and appendResponse adds their bytes to the frame size. The writer then sends the
// encoded bytes up to the first such place, that partition's file ranges with sendfile, the
// encoded bytes up to the next, and so on. Nothing of the data is copied or searched for.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/log"
	"github.com/kafkaguard/kafkaguard/internal/broker/partition"
	"github.com/kafkaguard/kafkaguard/internal/broker/wire"
)

const (
	// copyChunk is the buffer size of the pread+write fallback.
	copyChunk = 256 << 10
	// stallChunk is how much of a zero-copy response must go out within
	// Config.SendStallTimeout.
	stallChunk = 4 << 20
	// maxKeptBuffer bounds the request and response buffers a connection keeps for its next
	// request: one grown larger by a large request or response is not kept once it has served.
	maxKeptBuffer = 1 << 20
)

// zeroCopy is a broker's state for writing responses: the zero-copy byte counters and the
// buffers shared by its connections.
type zeroCopy struct {
	sent   atomic.Int64 // bytes sent with sendfile
	copied atomic.Int64 // bytes of file ranges sent by the pread+write fallback
	pool   sync.Pool    // *[]byte of copyChunk bytes for the fallback

	spareMu sync.Mutex
	spare   [][]byte // at most maxSpareBuffers response buffers larger than maxKeptBuffer
}

// maxSpareBuffers is how many large response buffers a broker keeps for its connections.
const maxSpareBuffers = 2

// takeSpare returns a large response buffer kept by putSpare, or nil.
func (z *zeroCopy) takeSpare() []byte {
	z.spareMu.Lock()
	defer z.spareMu.Unlock()
	n := len(z.spare)
	if n == 0 {
		return nil
	}
	buf := z.spare[n-1]
	z.spare[n-1] = nil
	z.spare = z.spare[:n-1]
	return buf
}

// putSpare keeps buf for takeSpare, unless maxSpareBuffers are kept already.
func (z *zeroCopy) putSpare(buf []byte) {
	z.spareMu.Lock()
	defer z.spareMu.Unlock()
	if len(z.spare) < maxSpareBuffers {
		z.spare = append(z.spare, buf[:0])
	}
}

// SendfileBytes returns how many bytes of record batches this broker has sent with sendfile(2)
// since it started. The pread+write fallback does not count.
func (b *Broker) SendfileBytes() int64 { return b.zc.sent.Load() }

// readZeroCopy reads one partition of a fetch as file ranges, which it stores in p.slices; the
// result carries no records. It returns the ranges' total length.
func readZeroCopy(p *fetchPart, req partition.FetchRequest) (partition.ReadResult, int, error) {
	res, ss, err := p.r.ReadSlices(req)
	var n int64
	for _, s := range ss {
		n += s.Len
	}
	if n == 0 {
		log.ReleaseSlices(ss)
		return res, 0, err
	}
	p.slices = ss
	return res, int(n), err
}

// releaseParts releases the file ranges the parts hold from an earlier read.
func releaseParts(parts []fetchPart) {
	for i := range parts {
		log.ReleaseSlices(parts[i].slices)
		parts[i].slices = nil
	}
}

// zeroCopyFetch is a Fetch response some of whose partitions' record batches are sent from the
// log files. It encodes as the embedded response would with those records in place, less their
// bytes (see AppendTo and appendResponse).
type zeroCopyFetch struct {
	*kmsg.FetchResponse
	parts []zeroCopyPart // in the order the partitions are encoded
}

// zeroCopyPart is one partition's response and the file ranges that hold its records.
type zeroCopyPart struct {
	resp   *kmsg.FetchResponseTopicPartition
	slices []log.FileSlice
	n      int // the ranges' total length
	gap    int // where the ranges go in the frame, set by AppendTo (and moved by appendResponse)
}

func (r *zeroCopyFetch) release() {
	for _, p := range r.parts {
		log.ReleaseSlices(p.slices)
	}
}

// fetchResponse returns resp as it must be written: a zeroCopyFetch that owns the parts' file
// ranges when any part holds some, else resp itself. parts are in resp's order.
func fetchResponse(resp *kmsg.FetchResponse, parts []fetchPart) kmsg.Response {
	var zc []zeroCopyPart
	for i := range parts {
		if p := &parts[i]; len(p.slices) > 0 {
			var n int64
			for _, s := range p.slices {
				n += s.Len
			}
			zc = append(zc, zeroCopyPart{resp: p.resp, slices: p.slices, n: int(n)})
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

// AppendTo appends the response as kmsg's FetchResponse.AppendTo does, for the versions the
// broker serves (4 to 18), except that the records of each zero-copy part end after their
// length prefix; each part's gap receives where in dst its bytes belong.
func (r *zeroCopyFetch) AppendTo(dst []byte) []byte {
	v := r.Version
	flexible := v >= 12
	next := 0 // the next zero-copy part
	if v >= 1 {
		dst = kbin.AppendInt32(dst, r.ThrottleMillis)
	}
	if v >= 7 {
		dst = kbin.AppendInt16(dst, r.ErrorCode)
		dst = kbin.AppendInt32(dst, r.SessionID)
	}
	dst = appendArrayLen(dst, len(r.Topics), flexible)
	for i := range r.Topics {
		t := &r.Topics[i]
		switch {
		case v >= 13:
			dst = kbin.AppendUuid(dst, t.TopicID)
		case flexible:
			dst = kbin.AppendCompactString(dst, t.Topic)
		default:
			dst = kbin.AppendString(dst, t.Topic)
		}
		dst = appendArrayLen(dst, len(t.Partitions), flexible)
		for j := range t.Partitions {
			p := &t.Partitions[j]
			dst = kbin.AppendInt32(dst, p.Partition)
			dst = kbin.AppendInt16(dst, p.ErrorCode)
			dst = kbin.AppendInt64(dst, p.HighWatermark)
			if v >= 4 {
				dst = kbin.AppendInt64(dst, p.LastStableOffset)
			}
			if v >= 5 {
				dst = kbin.AppendInt64(dst, p.LogStartOffset)
			}
			if v >= 4 {
				a := p.AbortedTransactions
				if flexible {
					dst = kbin.AppendCompactNullableArrayLen(dst, len(a), a == nil)
				} else {
					dst = kbin.AppendNullableArrayLen(dst, len(a), a == nil)
				}
				for k := range a {
					dst = kbin.AppendInt64(dst, a[k].ProducerID)
					dst = kbin.AppendInt64(dst, a[k].FirstOffset)
					if flexible {
						dst = appendTags(dst, &a[k].UnknownTags)
					}
				}
			}
			if v >= 11 {
				dst = kbin.AppendInt32(dst, p.PreferredReadReplica)
			}
			switch {
			case next < len(r.parts) && r.parts[next].resp == p:
				// The length prefix of the bytes the files hold; the bytes follow in the frame.
				n := r.parts[next].n
				if flexible {
					dst = kbin.AppendUvarint(dst, uint32(n)+1)
				} else {
					dst = kbin.AppendInt32(dst, int32(n))
				}
				r.parts[next].gap = len(dst)
				next++
			case flexible:
				dst = kbin.AppendCompactNullableBytes(dst, p.RecordBatches)
			default:
				dst = kbin.AppendNullableBytes(dst, p.RecordBatches)
			}
			if flexible {
				dst = appendPartitionTags(dst, p)
			}
		}
		if flexible {
			dst = appendTags(dst, &t.UnknownTags)
		}
	}
	if flexible {
		n := r.UnknownTags.Len()
		if len(r.Brokers) > 0 {
			n++
		}
		dst = kbin.AppendUvarint(dst, uint32(n))
		if len(r.Brokers) > 0 {
			dst = appendTagged(dst, 0, func(dst []byte) []byte {
				dst = kbin.AppendCompactArrayLen(dst, len(r.Brokers))
				for i := range r.Brokers {
					br := &r.Brokers[i]
					dst = kbin.AppendInt32(dst, br.NodeID)
					dst = kbin.AppendCompactString(dst, br.Host)
					dst = kbin.AppendInt32(dst, br.Port)
					dst = kbin.AppendCompactNullableString(dst, br.Rack)
					dst = appendTags(dst, &br.UnknownTags)
				}
				return dst
			})
		}
		dst = r.UnknownTags.AppendEach(dst)
	}
	if next != len(r.parts) {
		// A part whose partition is not in the response: a bug, and the frame would be wrong.
		panic(fmt.Sprintf("server: %d of %d zero-copy partitions not found in the fetch response", len(r.parts)-next, len(r.parts)))
	}
	return dst
}

// appendPartitionTags appends the tagged fields of a partition of a flexible Fetch response:
// each of DivergingEpoch (0), CurrentLeader (1) and SnapshotID (2) that is not its default, as
// kmsg does, and the unknown tags.
func appendPartitionTags(dst []byte, p *kmsg.FetchResponseTopicPartition) []byte {
	d, l, s := &p.DivergingEpoch, &p.CurrentLeader, &p.SnapshotID
	hasD := d.Epoch != -1 || d.EndOffset != -1 || d.UnknownTags.Len() > 0
	hasL := l.LeaderID != -1 || l.LeaderEpoch != -1 || l.UnknownTags.Len() > 0
	hasS := s.EndOffset != -1 || s.Epoch != -1 || s.UnknownTags.Len() > 0
	n := p.UnknownTags.Len()
	for _, has := range []bool{hasD, hasL, hasS} {
		if has {
			n++
		}
	}
	dst = kbin.AppendUvarint(dst, uint32(n))
	if hasD {
		dst = appendTagged(dst, 0, func(dst []byte) []byte {
			dst = kbin.AppendInt32(dst, d.Epoch)
			dst = kbin.AppendInt64(dst, d.EndOffset)
			return appendTags(dst, &d.UnknownTags)
		})
	}
	if hasL {
		dst = appendTagged(dst, 1, func(dst []byte) []byte {
			dst = kbin.AppendInt32(dst, l.LeaderID)
			dst = kbin.AppendInt32(dst, l.LeaderEpoch)
			return appendTags(dst, &l.UnknownTags)
		})
	}
	if hasS {
		dst = appendTagged(dst, 2, func(dst []byte) []byte {
			dst = kbin.AppendInt64(dst, s.EndOffset)
			dst = kbin.AppendInt32(dst, s.Epoch)
			return appendTags(dst, &s.UnknownTags)
		})
	}
	return p.UnknownTags.AppendEach(dst)
}

// appendArrayLen appends an array length, compact in flexible versions.
func appendArrayLen(dst []byte, n int, flexible bool) []byte {
	if flexible {
		return kbin.AppendCompactArrayLen(dst, n)
	}
	return kbin.AppendArrayLen(dst, n)
}

// appendTags appends the tagged-field section of a struct that has only unknown tags.
func appendTags(dst []byte, t *kmsg.Tags) []byte {
	return t.AppendEach(kbin.AppendUvarint(dst, uint32(t.Len())))
}

// appendTagged appends one tagged field: its tag, its size and the bytes body appends.
func appendTagged(dst []byte, tag uint32, body func([]byte) []byte) []byte {
	dst = kbin.AppendUvarint(dst, tag)
	b := body(nil)
	return append(kbin.AppendUvarint(dst, uint32(len(b))), b...)
}

// appendResponse appends resp's frame to dst, as wire.AppendResponse does; the frame of a
// zero-copy fetch leaves its file ranges out, and its size counts them.
func appendResponse(dst []byte, corr int32, resp kmsg.Response) []byte {
	start := len(dst)
	dst = wire.AppendResponse(dst, corr, resp)
	if zr, ok := resp.(*zeroCopyFetch); ok {
		size := len(dst) - start - 4
		for i, p := range zr.parts {
			size += p.n
			zr.parts[i].gap -= start
		}
		binary.BigEndian.PutUint32(dst[start:], uint32(size))
	}
	return dst
}

// respond writes resp to c as correlation id corr's answer, encoding it into *buf, the
// connection's response buffer. A connection keeps a buffer of at most maxKeptBuffer between
// responses: one that a response grew larger goes to the broker's few spare buffers (or, when
// they are all there, to the garbage collector), and a connection without a buffer takes a
// spare one, so that large responses reuse a bounded set of buffers however many connections
// the broker has, and an idle connection holds no large buffer.
func (b *Broker) respond(c net.Conn, buf *[]byte, corr int32, resp kmsg.Response) error {
	if *buf == nil {
		*buf = b.zc.takeSpare()
	}
	*buf = appendResponse((*buf)[:0], corr, resp)
	err := b.writeResponse(c, *buf, resp)
	if cap(*buf) > maxKeptBuffer {
		b.zc.putSpare(*buf)
		*buf = nil
	}
	return err
}

// keptBuffer returns buf emptied for reuse, or nil when it is too large to keep.
func keptBuffer(buf []byte) []byte {
	if cap(buf) > maxKeptBuffer {
		return nil
	}
	return buf[:0]
}

// writeResponse writes a frame encoded by appendResponse to c. For a zero-copy fetch the file
// ranges go in their places on the way, and are released.
func (b *Broker) writeResponse(c net.Conn, frame []byte, resp kmsg.Response) error {
	zr, ok := resp.(*zeroCopyFetch)
	if !ok {
		_, err := c.Write(frame)
		return err
	}
	defer zr.release()
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
	// sendfile(2) would put the files' plain bytes on a TLS connection's socket.
	send := b.zc.sendRange
	if b.cfg.TLS != nil {
		send = b.zc.copyRange
	}
	pos := 0
	for _, p := range zr.parts {
		stalled()
		if err := writeAll(c, frame[pos:p.gap]); err != nil {
			return err
		}
		for _, s := range p.slices {
			for off, end := s.Pos, s.Pos+s.Len; off < end; off += stallChunk {
				stalled()
				if err := send(c, s.File, off, min(end-off, stallChunk)); err != nil {
					return err
				}
			}
		}
		pos = p.gap
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
