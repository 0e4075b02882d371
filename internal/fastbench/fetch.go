package fastbench

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/cluster"
)

// fetchPartitions is how many partitions the fetch topic has.
const fetchPartitions = 4

// Fetch compares consuming size bytes from a broker that sends record batches from the log
// files with sendfile(2) (zero-copy) against one that reads them into its memory and copies
// them into the response (server.Config.DisableZeroCopy), both from the page cache over
// loopback, with plain Fetch requests (FetchAll) so that the client does almost no work, for
// about d per side.
func Fetch(ctx context.Context, dir string, size int64, d time.Duration, progress func(string)) (Row, error) {
	var sides [2]Side
	for i, zc := range []bool{true, false} {
		name := "sendfile"
		if !zc {
			name = "copy"
		}
		side, err := fetchSide(ctx, dir, name, zc, size, d, progress)
		if err != nil {
			return Row{}, err
		}
		sides[i] = side
	}
	return rateRow("fetch: zero-copy beats copying", sides[0], sides[1],
		fmt.Sprintf("%s of 1 KiB records in %d partitions, from the page cache over loopback", sizeText(size), fetchPartitions)), nil
}

func fetchSide(ctx context.Context, dir, name string, zeroCopy bool, size int64, d time.Duration, progress func(string)) (Side, error) {
	progress("fetch: filling the " + name + " broker with " + sizeText(size))
	c, err := startBroker(ctx, brokerDir(dir, "fetch-"+name), zeroCopy)
	if err != nil {
		return Side{}, err
	}
	defer c.Close()
	const topic = "bench-fetch"
	ends, err := fill(ctx, c, topic, size)
	if err != nil {
		return Side{}, err
	}
	progress("fetch: " + name)
	conn, err := net.Dial("tcp", c.Bootstrap()[0])
	if err != nil {
		return Side{}, fmt.Errorf("fastbench: %w", err)
	}
	defer conn.Close()
	var buf []byte
	var total int64
	_, elapsed, err := until(ctx, d, func() error {
		n, err := FetchAll(conn, topic, ends, &buf)
		total += n
		return err
	})
	if err != nil {
		return Side{}, err
	}
	return Side{Name: name, Value: mbps(total, elapsed), Unit: "MB/s"}, nil
}

// fill writes about size bytes of 1 KiB random values (which do not compress) round-robin over
// the partitions of a new topic and returns each partition's end offset.
func fill(ctx context.Context, c *cluster.Cluster, topic string, size int64) (map[int32]int64, error) {
	if err := createTopic(ctx, c, topic, fetchPartitions); err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(), kgo.ProducerLinger(5*time.Millisecond),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		return nil, fmt.Errorf("fastbench: %w", err)
	}
	defer cl.Close()
	const valueSize = 1024
	values := make([]byte, 1<<20)
	_, _ = rand.Read(values)
	var firstErr atomic.Pointer[error]
	for i := range size / valueSize {
		off := (i * valueSize) % int64(len(values)-valueSize)
		cl.Produce(ctx, &kgo.Record{Value: values[off : off+valueSize]}, func(_ *kgo.Record, err error) {
			if err != nil {
				firstErr.CompareAndSwap(nil, &err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return nil, fmt.Errorf("fastbench: fill: %w", err)
	}
	if p := firstErr.Load(); p != nil {
		return nil, fmt.Errorf("fastbench: fill: %w", *p)
	}
	offs, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("fastbench: end offsets: %w", err)
	}
	ends := map[int32]int64{}
	offs.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
	return ends, nil
}

// FetchAll reads every partition of topic from offset 0 to its end offset in ends over conn,
// with Fetch v12 requests asking up to 1 MiB per partition (franz-go's default), into *buf
// (grown as needed and reused), and returns the record-batch bytes received. It decodes only
// the response framing and batch headers, so it measures the broker and the socket, with
// almost no client work.
func FetchAll(conn net.Conn, topic string, ends map[int32]int64, buf *[]byte) (int64, error) {
	next := map[int32]int64{}
	var total int64
	var req []byte
	f := kmsg.NewRequestFormatter(kmsg.FormatterClientID("kafkaguard-bench"))
	idle := 0 // responses in a row without a whole batch
	for corr := int32(1); ; corr++ {
		fr := kmsg.NewPtrFetchRequest()
		fr.SetVersion(12)
		fr.ReplicaID, fr.MaxWaitMillis, fr.MinBytes, fr.MaxBytes = -1, 100, 1, 50<<20
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = topic
		for p, end := range ends {
			if next[p] < end {
				rp := kmsg.NewFetchRequestTopicPartition()
				rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = p, next[p], 1<<20, -1
				rt.Partitions = append(rt.Partitions, rp)
			}
		}
		if len(rt.Partitions) == 0 {
			return total, nil
		}
		fr.Topics = append(fr.Topics, rt)
		req = f.AppendRequest(req[:0], fr, corr)
		if _, err := conn.Write(req); err != nil {
			return total, fmt.Errorf("fastbench: fetch: %w", err)
		}
		var size [4]byte
		if _, err := io.ReadFull(conn, size[:]); err != nil {
			return total, fmt.Errorf("fastbench: fetch: %w", err)
		}
		n := int(binary.BigEndian.Uint32(size[:]))
		if cap(*buf) < n {
			*buf = make([]byte, n)
		}
		frame := (*buf)[:n]
		if _, err := io.ReadFull(conn, frame); err != nil {
			return total, fmt.Errorf("fastbench: fetch: %w", err)
		}
		resp := kmsg.NewPtrFetchResponse()
		resp.SetVersion(12)
		if len(frame) < 5 {
			return total, errors.New("fastbench: fetch: short response")
		}
		if err := resp.ReadFrom(frame[5:]); err != nil { // correlation id, header tags
			return total, fmt.Errorf("fastbench: fetch: %w", err)
		}
		progressed := false
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if p.ErrorCode != 0 {
					return total, fmt.Errorf("fastbench: fetch partition %d: error code %d", p.Partition, p.ErrorCode)
				}
				total += int64(len(p.RecordBatches))
				for raw := p.RecordBatches; len(raw) >= recordsOffset; {
					r := kbin.Reader{Src: raw}
					base, length := r.Int64(), r.Int32()
					if int(length) < 0 || 12+int(length) > len(raw) {
						break // a partial batch at the end
					}
					last := int64(binary.BigEndian.Uint32(raw[23:27]))
					next[p.Partition] = base + last + 1
					progressed = true
					raw = raw[12+int(length):]
				}
			}
		}
		if idle++; progressed {
			idle = 0
		} else if idle > 50 {
			return total, errors.New("fastbench: fetch: no whole batch in 50 responses in a row")
		}
	}
}
