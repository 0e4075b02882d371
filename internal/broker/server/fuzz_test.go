package server_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/cluster"
	"github.com/kafkaguard/kafkaguard/internal/broker/records"
	"github.com/kafkaguard/kafkaguard/internal/broker/server"
	"github.com/kafkaguard/kafkaguard/internal/broker/wire"
)

// fzAnswerWithin bounds how long the broker may take to answer one fuzz input. The harness
// clamps every wait a request can ask for (produce and fetch timeouts, rebalance timeouts) far
// below it, so running into it means the broker hangs.
const fzAnswerWithin = 10 * time.Second

// fzTopic is the topic the fuzz cluster starts with (two partitions with a few records), so
// produce, fetch, list-offsets and commit inputs reach real partitions.
const fzTopic = "fz"

// fzBroker is a 1-broker in-process cluster the fuzz inputs go to over TCP.
type fzBroker struct {
	tb    testing.TB
	c     *cluster.Cluster
	addr  string
	conn  net.Conn     // for fuzz inputs; redialled after the broker closes it
	alive *wire.Client // a separate connection that must keep answering ApiVersions
	// versions is what ApiVersions advertised at the start, by API key: [min, max].
	versions map[int16][2]int16
}

func fzStart(tb testing.TB) *fzBroker {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := cluster.Start(ctx, cluster.Config{
		DataDir:                tb.TempDir(),
		SessionTimeout:         time.Second,
		ReplicaFetchMaxWait:    50 * time.Millisecond,
		GroupMinSessionTimeout: 10 * time.Millisecond,
		MaxRequestBytes:        1 << 20,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	b := &fzBroker{tb: tb, c: c, addr: c.Bootstrap()[0]}
	b.alive, err = wire.Dial(ctx, nil, b.addr, "fz-alive")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = b.alive.Close() })
	req := kmsg.NewPtrApiVersionsRequest()
	req.SetVersion(3)
	resp, err := b.alive.Request(ctx, req)
	if err != nil {
		tb.Fatal(err)
	}
	b.versions = map[int16][2]int16{}
	for _, k := range resp.(*kmsg.ApiVersionsResponse).ApiKeys {
		b.versions[k.ApiKey] = [2]int16{k.MinVersion, k.MaxVersion}
	}
	b.ensureTopic()
	return b
}

// ensureTopic (re)creates fzTopic with a few records if an input deleted it.
func (b *fzBroker) ensureTopic() {
	if b.c.Controller().Image().Topic(fzTopic) != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if errs := b.c.Controller().CreateTopics(ctx, []server.TopicSpec{{Name: fzTopic, Partitions: 2, ReplicationFactor: 1}}, false); errs[0] != nil {
		b.tb.Fatalf("create %s: %v", fzTopic, errs[0])
	}
	for p := int32(0); p < 2; p++ {
		for {
			if info, err := b.c.Partition(fzTopic, p); err == nil && info.HW >= 0 {
				break
			}
			if ctx.Err() != nil {
				b.tb.Fatalf("%s-%d has no leader", fzTopic, p)
			}
			time.Sleep(5 * time.Millisecond)
		}
		req := kmsg.NewPtrProduceRequest()
		req.SetVersion(9)
		req.Acks, req.TimeoutMillis = -1, 5000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = fzTopic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition = p
		rp.Records = records.Build([]records.Record{{Key: []byte("k"), Value: []byte("v0")}, {Value: []byte("v1")}}, time.Now().UnixMilli(), records.NoProducer)
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		if _, err := b.alive.Request(ctx, req); err != nil {
			b.tb.Fatalf("seed %s-%d: %v", fzTopic, p, err)
		}
	}
}

// tidy deletes the topics inputs created (auto-created by Metadata or by CreateTopics) once
// there are many, so a long fuzz run does not pile up partitions and open files.
func (b *fzBroker) tidy() {
	img := b.c.Controller().Image()
	if len(img.Topics) > 12 {
		var names []string
		for name, t := range img.Topics {
			if !t.Internal && name != fzTopic {
				names = append(names, name)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		b.c.Controller().DeleteTopics(ctx, names)
		cancel()
	}
	b.ensureTopic()
}

// clamp bounds what a request may make the broker wait for or create, so a fuzz input that
// asks for a 2^31 ms long poll does not read as a hang. The decoding and the handlers are
// still fed everything else as the fuzzer made it.
func clamp(req kmsg.Request) {
	wait := func(ms *int32, most int32) {
		if *ms <= 0 || *ms > most {
			*ms = most
		}
	}
	switch r := req.(type) {
	case *kmsg.ProduceRequest:
		wait(&r.TimeoutMillis, 500)
	case *kmsg.FetchRequest:
		if r.MaxWaitMillis > 100 {
			r.MaxWaitMillis = 100
		}
	case *kmsg.JoinGroupRequest:
		wait(&r.SessionTimeoutMillis, 1000)
		wait(&r.RebalanceTimeoutMillis, 1000)
	case *kmsg.CreateTopicsRequest:
		wait(&r.TimeoutMillis, 2000)
		for i := range r.Topics {
			t := &r.Topics[i]
			t.NumPartitions = min(t.NumPartitions, 4)
			t.ReplicaAssignment = t.ReplicaAssignment[:min(len(t.ReplicaAssignment), 4)]
		}
	case *kmsg.CreatePartitionsRequest:
		wait(&r.TimeoutMillis, 2000)
		for i := range r.Topics {
			r.Topics[i].Count = min(r.Topics[i].Count, 8)
		}
	case *kmsg.DeleteTopicsRequest:
		wait(&r.TimeoutMillis, 2000)
	}
}

// send writes one frame to the broker and returns its answer; closed reports that the broker
// closed the connection instead (as it must for an undecodable or unsupported request).
func (b *fzBroker) send(t *testing.T, frame []byte, expectAnswer bool) (answer []byte, closed bool) {
	t.Helper()
	if b.conn == nil {
		c, err := net.DialTimeout("tcp", b.addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial the broker: %v", err)
		}
		b.conn = c
	}
	_ = b.conn.SetDeadline(time.Now().Add(fzAnswerWithin))
	out := binary.BigEndian.AppendUint32(nil, uint32(len(frame)))
	if _, err := b.conn.Write(append(out, frame...)); err != nil {
		b.drop()
		return nil, true // closed while we wrote: a previous answer-less request was refused
	}
	if !expectAnswer {
		b.drop() // nothing comes back for acks=0; start the next input on a clean connection
		return nil, false
	}
	answer, err := wire.ReadFrame(b.conn, 64<<20, nil)
	if err != nil {
		b.drop()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the broker neither answered nor closed the connection within %v", fzAnswerWithin)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
			return nil, true
		}
		t.Fatalf("read the answer: %v", err)
	}
	return answer, false
}

func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}

func (b *fzBroker) drop() {
	if b.conn != nil {
		_ = b.conn.Close()
		b.conn = nil
	}
}

// advertises reports whether the broker's ApiVersions lists key at version v.
func (b *fzBroker) advertises(key, v int16) bool {
	r, ok := b.versions[key]
	return ok && r[0] <= v && v <= r[1]
}

// checkAlive fails unless the broker still answers ApiVersions on its long-lived connection.
func (b *fzBroker) checkAlive(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), fzAnswerWithin)
	defer cancel()
	req := kmsg.NewPtrApiVersionsRequest()
	req.SetVersion(3)
	resp, err := b.alive.Request(ctx, req)
	if err != nil {
		t.Fatalf("the broker stopped answering ApiVersions: %v", err)
	}
	if r := resp.(*kmsg.ApiVersionsResponse); r.ErrorCode != 0 || len(r.ApiKeys) == 0 {
		t.Fatalf("ApiVersions answered error %d with %d keys", r.ErrorCode, len(r.ApiKeys))
	}
}

// decodeAnswer checks that an answer is a well-formed response to h's request.
func decodeAnswer(t *testing.T, h wire.Header, req kmsg.Request, answer []byte) {
	t.Helper()
	if len(answer) < 4 {
		t.Fatalf("%d-byte answer", len(answer))
	}
	if corr := int32(binary.BigEndian.Uint32(answer)); corr != h.CorrelationID {
		t.Fatalf("answer carries correlation id %d, the request %d", corr, h.CorrelationID)
	}
	body := answer[4:]
	resp := req.ResponseKind()
	resp.SetVersion(h.Version)
	if resp.IsFlexible() && resp.Key() != 18 {
		if len(body) == 0 || body[0] != 0 {
			t.Fatalf("%s v%d answer: bad response header tags", kmsg.NameForKey(h.Key), h.Version)
		}
		body = body[1:]
	}
	err := resp.ReadFrom(body)
	if err != nil && h.Key == 18 {
		// A version the broker does not speak is answered with ApiVersions v0.
		resp.SetVersion(0)
		err = resp.ReadFrom(body)
	}
	if err != nil {
		t.Fatalf("%s v%d answer does not decode: %v", kmsg.NameForKey(h.Key), h.Version, err)
	}
}

// FuzzHandle sends each input, as a request frame, to a running 1-broker cluster. An input that
// wire.ParseRequest decodes is sent as the client would encode it (with waits clamped, see
// clamp); anything else is sent as is. The broker must answer with a well-formed response for
// the same correlation id, or close that connection; it must never panic or hang, and it must
// keep answering ApiVersions on another connection.
func FuzzHandle(f *testing.F) {
	b := fzStart(f)
	f.Fuzz(func(t *testing.T, frame []byte) {
		h, req, err := wire.ParseRequest(frame)
		if err != nil {
			if _, closed := b.send(t, frame, true); !closed && !(h.Key == 18 && errors.Is(err, wire.ErrUnsupportedVersion)) {
				t.Fatalf("the broker answered a request it cannot decode (%v) instead of closing the connection", err)
			}
		} else {
			clamp(req)
			out := kmsg.NewRequestFormatter(kmsg.FormatterClientID(h.ClientID)).AppendRequest(nil, req, h.CorrelationID)[4:]
			acks0 := false
			if p, ok := req.(*kmsg.ProduceRequest); ok && p.Acks == 0 {
				acks0 = true
			}
			answer, closed := b.send(t, out, !acks0)
			switch {
			case closed && b.advertises(h.Key, h.Version):
				t.Fatalf("the broker closed the connection on a %s v%d request it decodes and advertises", kmsg.NameForKey(h.Key), h.Version)
			case !closed && !acks0:
				decodeAnswer(t, h, req, answer)
			}
		}
		b.checkAlive(t)
		b.tidy()
	})
}

// TestFuzzHandleCorpusCoversEveryAdvertisedAPI checks that the checked-in FuzzHandle corpus
// holds a request of every API the broker advertises, at its lowest and highest version.
func TestFuzzHandleCorpusCoversEveryAdvertisedAPI(t *testing.T) {
	t.Parallel()
	b := fzStart(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := kmsg.NewPtrApiVersionsRequest()
	req.SetVersion(3)
	resp, err := b.alive.Request(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	dir := filepath.Join("testdata", "fuzz", "FuzzHandle")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		s, ok := strings.CutPrefix(string(raw), "go test fuzz v1\n[]byte(")
		s, ok2 := strings.CutSuffix(s, ")\n")
		frame, err := strconv.Unquote(s)
		if !ok || !ok2 || err != nil {
			t.Fatalf("%s is not a go test fuzz v1 []byte file", e.Name())
		}
		if h, _, err := wire.ParseRequest([]byte(frame)); err == nil {
			have[fmt.Sprintf("%d/%d", h.Key, h.Version)] = true
		}
	}
	for _, k := range resp.(*kmsg.ApiVersionsResponse).ApiKeys {
		for _, v := range []int16{k.MinVersion, k.MaxVersion} {
			if !have[fmt.Sprintf("%d/%d", k.ApiKey, v)] {
				t.Errorf("corpus has no %s v%d request (copy internal/broker/wire's seeds)", kmsg.NameForKey(k.ApiKey), v)
			}
		}
	}
}
