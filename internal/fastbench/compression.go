package fastbench

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/internal/broker/records"
)

// batchRecords is how many records one compressed batch holds, as a producer with a full
// batch would send.
const batchRecords = 500

// Compression compares, for each codec Kafka supports (gzip, snappy, lz4, zstd), the bytes a
// batch of JSON-like records takes on the wire and on disk with that codec against without
// compression, compressing the records section of a v2 batch as a producer does (franz-go's
// own compressor, default levels). The note gives what the codec costs: compression and
// decompression throughput on one core, each measured for about d/2.
func Compression(ctx context.Context, d time.Duration, progress func(string)) ([]Row, error) {
	recs := newOrders(2)
	in := make([]records.Record, batchRecords)
	for i := range in {
		in[i] = records.Record{Value: recs.next()}
	}
	body := records.Build(in, time.Now().UnixMilli(), records.NoProducer)[recordsOffset:]
	perRecord := float64(len(body)) / batchRecords
	none := Side{Name: "none", Value: perRecord, Unit: "B/record"}
	dec := kgo.DefaultDecompressor()
	var rows []Row
	for _, codec := range []struct {
		name string
		c    kgo.CompressionCodec
	}{{"gzip", kgo.GzipCompression()}, {"snappy", kgo.SnappyCompression()}, {"lz4", kgo.Lz4Compression()}, {"zstd", kgo.ZstdCompression()}} {
		progress("compression: " + codec.name)
		comp, err := kgo.DefaultCompressor(codec.c)
		if err != nil {
			return rows, fmt.Errorf("fastbench: %s: %w", codec.name, err)
		}
		var buf bytes.Buffer
		var out []byte
		var typ kgo.CompressionCodecType
		n, cElapsed, err := until(ctx, d/2, func() error {
			buf.Reset()
			out, typ = comp.Compress(&buf, body)
			return nil
		})
		if err != nil {
			return rows, err
		}
		compressed := append([]byte(nil), out...)
		cRate := mbps(int64(n)*int64(len(body)), cElapsed)
		m, dElapsed, err := until(ctx, d/2, func() error {
			got, err := dec.Decompress(compressed, typ)
			if err == nil && len(got) != len(body) {
				err = fmt.Errorf("decompressed %d bytes, want %d", len(got), len(body))
			}
			return err
		})
		if err != nil {
			return rows, fmt.Errorf("fastbench: %s: %w", codec.name, err)
		}
		dRate := mbps(int64(m)*int64(len(body)), dElapsed)
		side := Side{Name: codec.name, Value: float64(len(compressed)) / batchRecords, Unit: "B/record"}
		rows = append(rows, costRow("compression: "+codec.name+" shrinks each batch", side, none,
			fmt.Sprintf("%d-record batch; compress %.0f MB/s, decompress %.0f MB/s (one core)", batchRecords, cRate, dRate)))
	}
	return rows, nil
}

// recordsOffset is where the records section of a v2 batch starts: what a producer compresses.
const recordsOffset = 61
