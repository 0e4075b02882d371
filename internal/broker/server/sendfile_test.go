package server

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/log"
	"github.com/kafkaguard/kafkaguard/internal/broker/wire"
)

// randomFile returns an open file of n random bytes and the bytes.
func randomFile(t *testing.T, n int) (*os.File, []byte) {
	t.Helper()
	data := make([]byte, n)
	_, _ = rand.Read(data)
	path := filepath.Join(t.TempDir(), "segment.log")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f, data
}

// connPair returns the two ends of a connection: a TCP connection over loopback (sendfile
// applies) or net.Pipe (it does not).
func connPair(t *testing.T, kind string) (server, client net.Conn) {
	t.Helper()
	if kind == "pipe" {
		server, client = net.Pipe()
	} else {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		accepted := make(chan net.Conn, 1)
		go func() {
			c, _ := ln.Accept()
			accepted <- c
		}()
		if client, err = net.Dial("tcp", ln.Addr().String()); err != nil {
			t.Fatal(err)
		}
		if server = <-accepted; server == nil {
			t.Fatal("accept failed")
		}
	}
	t.Cleanup(func() { _ = server.Close(); _ = client.Close() })
	return server, client
}

// receive runs send on the server end and returns the n bytes the client end got, with send's
// error. It fails the test if send writes more than n bytes.
func receive(t *testing.T, server, client net.Conn, n int, send func(net.Conn) error) ([]byte, error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		err := send(server)
		_ = server.Close()
		errc <- err
	}()
	got := make([]byte, n)
	if _, err := io.ReadFull(client, got); err != nil {
		t.Fatalf("read %d bytes: %v (send: %v)", n, err, <-errc)
	}
	if extra, _ := io.Copy(io.Discard, client); extra != 0 {
		t.Errorf("%d bytes sent after the expected %d", extra, n)
	}
	return got, <-errc
}

func TestSendRangeSendsExactlyTheRangeWithoutMovingTheFilePosition(t *testing.T) {
	t.Parallel()
	f, data := randomFile(t, 6<<20)
	tests := []struct {
		conn     string
		off, n   int64
		sendfile bool
	}{
		{"tcp", 0, 61, true},
		{"tcp", 12345, 100_000, true},
		{"tcp", 1 << 20, 5 << 20, true}, // far more than a socket buffer: partial writes, EAGAIN
		{"pipe", 0, 61, false},
		{"pipe", 777, 3<<20 + 5, false}, // several fallback chunks
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d+%d", tt.conn, tt.off, tt.n), func(t *testing.T) {
			const filePos = 4242
			if _, err := f.Seek(filePos, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			var z zeroCopy
			server, client := connPair(t, tt.conn)
			got, err := receive(t, server, client, int(tt.n), func(c net.Conn) error { return z.sendRange(c, f, tt.off, tt.n) })
			if err != nil {
				t.Fatalf("sendRange: %v", err)
			}
			if !bytes.Equal(got, data[tt.off:tt.off+tt.n]) {
				t.Fatal("received bytes differ from the file range")
			}
			if pos, _ := f.Seek(0, io.SeekCurrent); pos != filePos {
				t.Errorf("file position moved to %d, want %d", pos, filePos)
			}
			wantSent, wantCopied := tt.n, int64(0)
			if !tt.sendfile {
				wantSent, wantCopied = 0, tt.n
			}
			if z.sent.Load() != wantSent || z.copied.Load() != wantCopied {
				t.Errorf("sent with sendfile %d, copied %d; want %d, %d", z.sent.Load(), z.copied.Load(), wantSent, wantCopied)
			}
		})
	}
}

func TestSendRangeReportsARangePastTheEndOfTheFile(t *testing.T) {
	t.Parallel()
	f, _ := randomFile(t, 1000)
	for _, kind := range []string{"tcp", "pipe"} {
		t.Run(kind, func(t *testing.T) {
			var z zeroCopy
			server, client := connPair(t, kind)
			go func() { _, _ = io.Copy(io.Discard, client) }()
			err := z.sendRange(server, f, 900, 200)
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("sendRange past the end: %v, want io.ErrUnexpectedEOF", err)
			}
		})
	}
}

// fetchLayout is one partition of a test fetch response: its file ranges (none: no data), error
// code, and the fields a fetch response may carry besides (set when extras is true).
type fetchLayout struct {
	topic  string
	p      int32
	ranges [][2]int64 // [pos, len) pairs in the test file
	code   int16
	null   bool // no data: null records rather than empty ones
	extras bool // aborted transactions, diverging epoch, current leader, snapshot id, unknown tags
}

// fetchResponses builds the same fetch response twice: with the data copied in (left out when
// data is nil), and with file ranges, as handleFetch does.
func fetchResponses(version int16, f *os.File, data []byte, layout []fetchLayout) (copied *kmsg.FetchResponse, zc kmsg.Response) {
	build := func() *kmsg.FetchResponse {
		r := kmsg.NewPtrFetchResponse()
		r.Version, r.ThrottleMillis, r.SessionID = version, 3, 0
		if version >= 16 {
			rack := "rack-a"
			r.Brokers = []kmsg.FetchResponseBroker{{NodeID: 1, Host: "b1", Port: 9092, Rack: &rack}, {NodeID: 2, Host: "b2", Port: 9093}}
		}
		for _, l := range layout {
			if len(r.Topics) == 0 || r.Topics[len(r.Topics)-1].Topic != l.topic {
				t := kmsg.NewFetchResponseTopic()
				t.Topic = l.topic
				t.TopicID = [16]byte{byte(len(l.topic)), 1}
				r.Topics = append(r.Topics, t)
			}
			sp := kmsg.NewFetchResponseTopicPartition()
			sp.Partition, sp.ErrorCode, sp.HighWatermark, sp.LastStableOffset = l.p, l.code, 1000+int64(l.p), 900
			sp.LogStartOffset = 7
			if l.extras {
				sp.AbortedTransactions = []kmsg.FetchResponseTopicPartitionAbortedTransaction{{ProducerID: 9, FirstOffset: 901}, {ProducerID: 10, FirstOffset: 950}}
				sp.PreferredReadReplica = 2
				sp.DivergingEpoch.Epoch, sp.DivergingEpoch.EndOffset = 4, 800
				sp.CurrentLeader.LeaderID, sp.CurrentLeader.LeaderEpoch = 2, 5
				sp.SnapshotID.EndOffset, sp.SnapshotID.Epoch = 700, 3
				sp.UnknownTags.Set(9, []byte("partition tag"))
				sp.AbortedTransactions[1].UnknownTags.Set(5, []byte{1, 2})
			}
			t := &r.Topics[len(r.Topics)-1]
			t.Partitions = append(t.Partitions, sp)
		}
		return r
	}
	copied, withFiles := build(), build()
	var parts []fetchPart
	k := 0
	for ti := range withFiles.Topics {
		for pi := range withFiles.Topics[ti].Partitions {
			l := layout[k]
			k++
			raw := []byte{}
			if l.null {
				raw = nil
			}
			var ss []log.FileSlice
			for _, r := range l.ranges {
				if data != nil {
					raw = append(raw, data[r[0]:r[0]+r[1]]...)
				}
				ss = append(ss, log.FileSlice{File: f, Pos: r[0], Len: r[1]})
			}
			copied.Topics[ti].Partitions[pi].RecordBatches = raw
			sp := &withFiles.Topics[ti].Partitions[pi]
			if l.ranges == nil {
				sp.RecordBatches = raw // empty or null, as in the copy
			}
			parts = append(parts, fetchPart{resp: sp, slices: ss})
		}
	}
	if version >= 12 {
		copied.Topics[0].UnknownTags.Set(3, []byte("topic tag"))
		withFiles.Topics[0].UnknownTags.Set(3, []byte("topic tag"))
		copied.UnknownTags.Set(7, []byte("response tag"))
		withFiles.UnknownTags.Set(7, []byte("response tag"))
	}
	return copied, fetchResponse(withFiles, parts)
}

func TestZeroCopyFrameIsByteIdenticalToTheCopiedFrame(t *testing.T) {
	t.Parallel()
	f, data := randomFile(t, 2<<20)
	layout := []fetchLayout{
		{topic: "orders", p: 0, ranges: [][2]int64{{0, 4096}}},
		{topic: "orders", p: 1},                                                  // nothing new
		{topic: "orders", p: 2, ranges: [][2]int64{{10_000, 700}, {50_000, 61}}}, // across a segment roll
		{topic: "orders", p: 3, code: 6},                                         // not leader
		{topic: "payments", p: 0, ranges: [][2]int64{{100_000, 1 << 20}}},        // larger than a socket buffer
		{topic: "payments", p: 7, ranges: [][2]int64{{1_500_000, 200}, {0, 16}}}, // tiny slice after a normal one
		{topic: "payments", p: 8, ranges: [][2]int64{{3, 5}}, extras: true},      // every optional field
		{topic: "refunds", p: 0, null: true, extras: true},                       // a topic without data
		{topic: "refunds", p: 1},
		{topic: "audit", p: 0, ranges: [][2]int64{{200_000, 127}}}, // a compact length of two bytes
	}
	var total int64
	for _, l := range layout {
		for _, r := range l.ranges {
			total += r[1]
		}
	}
	for _, conn := range []string{"tcp", "pipe"} {
		for version := int16(4); version <= 18; version++ {
			t.Run(fmt.Sprintf("%s/v%d", conn, version), func(t *testing.T) {
				b := &Broker{}
				copied, zc := fetchResponses(version, f, data, layout)
				if _, ok := zc.(*zeroCopyFetch); !ok {
					t.Fatalf("fetchResponse returned %T, want *zeroCopyFetch", zc)
				}
				want := wire.AppendResponse(nil, 77, copied)
				frame := appendResponse(nil, 77, zc)
				if int64(len(frame))+total != int64(len(want)) {
					t.Fatalf("zero-copy frame is %d bytes + %d from the files, copied frame %d", len(frame), total, len(want))
				}
				server, client := connPair(t, conn)
				got, err := receive(t, server, client, len(want), func(c net.Conn) error { return b.writeResponse(c, frame, zc) })
				if err != nil {
					t.Fatalf("writeResponse: %v", err)
				}
				if !bytes.Equal(got, want) {
					t.Fatal("zero-copy frame differs from the copied frame")
				}
				if conn == "tcp" && b.SendfileBytes() != total {
					t.Errorf("SendfileBytes = %d, want %d", b.SendfileBytes(), total)
				}
				if conn == "pipe" && (b.SendfileBytes() != 0 || b.zc.copied.Load() != total) {
					t.Errorf("over a pipe: sendfile %d, copied %d; want 0, %d", b.SendfileBytes(), b.zc.copied.Load(), total)
				}
			})
		}
	}
}

func TestFetchResponseWithoutDataIsThePlainResponse(t *testing.T) {
	t.Parallel()
	r := kmsg.NewPtrFetchResponse()
	sp := kmsg.NewFetchResponseTopicPartition()
	if got := fetchResponse(r, []fetchPart{{resp: &sp}}); got != kmsg.Response(r) {
		t.Fatalf("fetchResponse = %T, want the response itself", got)
	}
}

func TestConnectionDropsItsResponseBufferAfterALargeResponse(t *testing.T) {
	t.Parallel()
	b := &Broker{}
	response := func(n int) kmsg.Response {
		r := kmsg.NewPtrFetchResponse()
		r.Version = 12
		topic := kmsg.NewFetchResponseTopic()
		topic.Topic = "t"
		sp := kmsg.NewFetchResponseTopicPartition()
		sp.RecordBatches = make([]byte, n)
		topic.Partitions = append(topic.Partitions, sp)
		r.Topics = append(r.Topics, topic)
		return r
	}
	server, client := connPair(t, "tcp")
	go func() { _, _ = io.Copy(io.Discard, client) }()
	var buf []byte
	if err := b.respond(server, &buf, 1, response(1000)); err != nil {
		t.Fatal(err)
	}
	if cap(buf) == 0 {
		t.Fatal("the buffer of a small response was not kept for the next one")
	}
	// A large response, then small ones on this connection and another: neither keeps a
	// large buffer (the large one goes to the broker's pool, which either may draw from for
	// one response and gives it back).
	var other []byte
	for i, step := range []struct {
		buf *[]byte
		n   int
	}{{&buf, 8 << 20}, {&buf, 1000}, {&other, 100}, {&buf, 1000}} {
		if err := b.respond(server, step.buf, int32(2+i), response(step.n)); err != nil {
			t.Fatal(err)
		}
		if cap(*step.buf) > maxKeptBuffer {
			t.Fatalf("step %d: after a %d-byte response a connection keeps a %d-byte buffer, over %d", i, step.n, cap(*step.buf), maxKeptBuffer)
		}
	}
}

// appendBatch appends to l one valid v2 record batch holding values, as a producer sends it.
func appendBatch(t *testing.T, l *log.Log, values ...[]byte) {
	t.Helper()
	var recs []byte
	for i, v := range values {
		r := kmsg.Record{OffsetDelta: int32(i), Value: v}
		r.Length = int32(len(r.AppendTo(nil)) - 1)
		recs = r.AppendTo(recs)
	}
	b := kmsg.RecordBatch{
		Magic: 2, LastOffsetDelta: int32(len(values) - 1), ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1,
		NumRecords: int32(len(values)), Records: recs,
	}
	raw := b.AppendTo(nil)
	b.Length = int32(len(raw) - 12)
	raw = b.AppendTo(raw[:0])
	crc := crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli))
	raw[17], raw[18], raw[19], raw[20] = byte(crc>>24), byte(crc>>16), byte(crc>>8), byte(crc)
	if _, err := l.AppendLeader(raw, 0); err != nil {
		t.Fatalf("append: %v", err)
	}
}

func TestWriteResponseReleasesTheFileRangesOnSuccessAndOnError(t *testing.T) {
	t.Parallel()
	for _, outcome := range []string{"written", "write fails", "dropped unwritten"} {
		t.Run(outcome, func(t *testing.T) {
			l, err := log.Open(t.TempDir(), log.Config{SegmentBytes: 400}, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 6; i++ {
				appendBatch(t, l, bytes.Repeat([]byte{byte(i)}, 150))
			}
			ss, err := l.ReadSlices(0, 1<<20, l.EndOffset())
			if err != nil || len(ss) < 2 {
				t.Fatalf("ReadSlices: %d slices, %v; want several segments", len(ss), err)
			}
			b := &Broker{}
			r := kmsg.NewPtrFetchResponse()
			r.Version = 12
			topic := kmsg.NewFetchResponseTopic()
			topic.Topic = "t"
			topic.Partitions = []kmsg.FetchResponseTopicPartition{kmsg.NewFetchResponseTopicPartition()}
			r.Topics = []kmsg.FetchResponseTopic{topic}
			var n int64
			for _, s := range ss {
				n += s.Len
			}
			zc := fetchResponse(r, []fetchPart{{resp: &r.Topics[0].Partitions[0], slices: ss}})
			frame := appendResponse(nil, 1, zc)

			server, client := connPair(t, "tcp")
			switch outcome {
			case "written":
				if _, err := receive(t, server, client, len(frame)+int(n), func(c net.Conn) error { return b.writeResponse(c, frame, zc) }); err != nil {
					t.Fatal(err)
				}
			case "write fails":
				_ = client.Close()
				_ = server.Close()
				if err := b.writeResponse(server, frame, zc); err == nil {
					t.Fatal("writeResponse to a closed connection succeeded")
				}
			default:
				discardResponse(zc)
			}
			// Closing the log closes every segment file no one holds any more.
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			for i, s := range ss {
				if _, err := s.File.ReadAt(make([]byte, 1), s.Pos); !errors.Is(err, os.ErrClosed) {
					t.Errorf("slice %d: file still open (%v): not released", i, err)
				}
			}
		})
	}
}

// BenchmarkFetchFrame encodes and writes one fetch response of four 1 MiB partitions to a
// loopback socket: with the data read into fresh buffers and encoded (copy, as log.Read and
// kmsg do), or with file ranges and sendfile (zerocopy). allocs/op and B/op show that the
// zero-copy frame costs no allocation of the data's size.
func BenchmarkFetchFrame(b *testing.B) {
	const parts, partSize = 4, 1 << 20
	data := make([]byte, parts*partSize)
	_, _ = rand.Read(data)
	path := filepath.Join(b.TempDir(), "segment.log")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		buf := make([]byte, 1<<20)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	// The broker writes on the accepted end; here the dialled end writes and the other
	// discards, which is the same socket path.
	var layout []fetchLayout
	for p := range int32(parts) {
		layout = append(layout, fetchLayout{topic: "t", p: p, ranges: [][2]int64{{int64(p) * partSize, partSize}}})
	}
	for _, zeroCopy := range []bool{true, false} {
		name := "copy"
		if zeroCopy {
			name = "zerocopy"
		}
		b.Run(name, func(b *testing.B) {
			br := &Broker{}
			var out []byte
			b.SetBytes(parts * partSize)
			b.ReportAllocs()
			for b.Loop() {
				if zeroCopy {
					_, zc := fetchResponses(12, f, nil, layout)
					out = appendResponse(out[:0], 1, zc)
					if err := br.writeResponse(c, out, zc); err != nil {
						b.Fatal(err)
					}
					continue
				}
				r := kmsg.NewPtrFetchResponse()
				r.Version = 12
				t := kmsg.NewFetchResponseTopic()
				t.Topic = "t"
				for _, l := range layout {
					sp := kmsg.NewFetchResponseTopicPartition()
					sp.Partition = l.p
					sp.RecordBatches = make([]byte, partSize)
					if _, err := f.ReadAt(sp.RecordBatches, l.ranges[0][0]); err != nil {
						b.Fatal(err)
					}
					t.Partitions = append(t.Partitions, sp)
				}
				r.Topics = append(r.Topics, t)
				out = wire.AppendResponse(out[:0], 1, r)
				if _, err := c.Write(out); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
