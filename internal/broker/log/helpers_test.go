package log

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// spec describes a test batch.
type spec struct {
	base       int64
	epoch      int32
	records    int   // default 1
	valueSize  int   // bytes per record value
	ts         int64 // FirstTimestamp; record i has ts+i
	attrs      int16
	producerID int64 // default -1
	baseSeq    int32
	// recHook, if set, may change each record after its length is set.
	recHook func(i int, r *kmsg.Record)
	// tail is appended after the records (counted in the batch length).
	tail []byte
	// codec, if set, compresses the records and tail with compress and sets
	// the batch's compression attribute.
	codec int8
}

// buildBatch encodes a v2 batch with kmsg and a correct CRC-32C.
func buildBatch(s spec) []byte {
	if s.records == 0 {
		s.records = 1
	}
	if s.producerID == 0 {
		s.producerID, s.baseSeq = -1, -1
	}
	var recs []byte
	for i := range s.records {
		r := kmsg.Record{
			TimestampDelta64: int64(i),
			OffsetDelta:      int32(i),
			Key:              []byte(fmt.Sprintf("key-%d", i)),
			Value:            bytes.Repeat([]byte{byte('a' + i%26)}, s.valueSize),
		}
		r.Length = int32(len(r.AppendTo(nil)) - 1) // the zero length took one byte
		if s.recHook != nil {
			s.recHook(i, &r)
		}
		recs = r.AppendTo(recs)
	}
	recs = append(recs, s.tail...)
	if s.codec != 0 {
		recs = compress(s.codec, recs)
		s.attrs |= int16(s.codec)
	}
	rb := kmsg.RecordBatch{
		FirstOffset:          s.base,
		Length:               int32(minBatchLength + len(recs)),
		PartitionLeaderEpoch: s.epoch,
		Magic:                2,
		Attributes:           s.attrs,
		LastOffsetDelta:      int32(s.records - 1),
		FirstTimestamp:       s.ts,
		MaxTimestamp:         s.ts + int64(s.records-1),
		ProducerID:           s.producerID,
		ProducerEpoch:        -1,
		FirstSequence:        s.baseSeq,
		NumRecords:           int32(s.records),
		Records:              recs,
	}
	b := rb.AppendTo(nil)
	fixCRC(b)
	return b
}

// fixCRC recomputes the CRC of the single batch b.
func fixCRC(b []byte) {
	binary.BigEndian.PutUint32(b[posCRC:], crc32.Checksum(b[posAttributes:], castagnoli))
}

func concat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

// testLogger collects log records so tests can check warnings.
type testLogger struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (t *testLogger) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.Write(p)
}

func (t *testLogger) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.String()
}

func (t *testLogger) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(t, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func openLog(t testing.TB, dir string, cfg Config) *Log {
	t.Helper()
	l, err := Open(dir, cfg, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// appendN appends n one-batch appends of recs records each, with
// timestamps ts0, ts0+step, ... and returns the batches as stored.
func appendN(t testing.TB, l *Log, n, recs, valueSize int, epoch int32, ts0, step int64) [][]byte {
	t.Helper()
	var out [][]byte
	for i := range n {
		b := buildBatch(spec{records: recs, valueSize: valueSize, ts: ts0 + int64(i)*step})
		if _, err := l.AppendLeader(b, epoch); err != nil {
			t.Fatalf("AppendLeader %d: %v", i, err)
		}
		out = append(out, b)
	}
	return out
}

// readAll reads the whole log from StartOffset in one go.
func readAll(t testing.TB, l *Log) []byte {
	t.Helper()
	b, err := l.Read(l.StartOffset(), 1<<30, l.EndOffset())
	if err != nil {
		t.Fatalf("Read all: %v", err)
	}
	return b
}

// checkContiguous validates b as batches and checks that their offsets run
// from first to end without gaps.
func checkContiguous(t testing.TB, b []byte, first, end int64) {
	t.Helper()
	if len(b) == 0 {
		if first != end {
			t.Fatalf("no batches, want offsets [%d, %d)", first, end)
		}
		return
	}
	hs, err := ValidateBatches(b, 0)
	if err != nil {
		t.Fatalf("read bytes do not validate: %v", err)
	}
	next := first
	for i, h := range hs {
		if h.BaseOffset != next {
			t.Fatalf("batch %d base offset %d, want %d", i, h.BaseOffset, next)
		}
		next = h.NextOffset()
	}
	if next != end {
		t.Fatalf("batches end at %d, want %d", next, end)
	}
}

func segmentFiles(t testing.TB, dir, suffix string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+suffix))
	if err != nil {
		t.Fatal(err)
	}
	for i := range m {
		m[i] = filepath.Base(m[i])
	}
	return m
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func timeNow() time.Time { return time.Now() }
