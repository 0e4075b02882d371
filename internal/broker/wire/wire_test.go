package wire_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/wire"
)

func prefixed(body []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

func TestReadFrameBoundsAndErrors(t *testing.T) {
	tests := []struct {
		name    string
		stream  []byte
		max     int32
		want    []byte
		wantErr error
	}{
		{name: "whole frame", stream: prefixed([]byte("abc")), max: 10, want: []byte("abc")},
		{name: "exactly the maximum", stream: prefixed([]byte("abcd")), max: 4, want: []byte("abcd")},
		{name: "empty frame", stream: prefixed(nil), max: 4, want: []byte{}},
		{name: "one byte over the maximum", stream: prefixed([]byte("abcde")), max: 4, wantErr: wire.ErrFrameTooLarge},
		{name: "negative size", stream: []byte{0x80, 0, 0, 0}, max: 1 << 30, wantErr: wire.ErrFrameTooLarge},
		{name: "huge size is refused before reading", stream: []byte{0x7f, 0xff, 0xff, 0xff}, max: 1 << 20, wantErr: wire.ErrFrameTooLarge},
		{name: "truncated body", stream: prefixed([]byte("abc"))[:5], max: 10, wantErr: io.ErrUnexpectedEOF},
		{name: "truncated prefix", stream: []byte{0, 0}, max: 10, wantErr: io.ErrUnexpectedEOF},
		{name: "clean end of stream", stream: nil, max: 10, wantErr: io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := wire.ReadFrame(bytes.NewReader(tt.stream), tt.max, nil)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || got != nil {
					t.Fatalf("ReadFrame = %q, %v; want error %v", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tt.want) {
				t.Fatalf("ReadFrame = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestReadFrameReusesALargeEnoughBuffer(t *testing.T) {
	buf := make([]byte, 0, 16)
	got, err := wire.ReadFrame(bytes.NewReader(prefixed([]byte("abc"))), 100, buf)
	if err != nil {
		t.Fatal(err)
	}
	if &got[:1][0] != &buf[:1][0] {
		t.Fatal("a buffer with room was not reused")
	}
	got, err = wire.ReadFrame(bytes.NewReader(prefixed(make([]byte, 32))), 100, buf)
	if err != nil || len(got) != 32 {
		t.Fatalf("ReadFrame into a small buffer: %d bytes, %v", len(got), err)
	}
}

func TestParseRequestRefusesBadFramesWithSentinels(t *testing.T) {
	meta := encode(request(3, 9), 5, "c") // flexible Metadata
	tests := []struct {
		name  string
		frame []byte
		want  error
	}{
		{"empty", nil, wire.ErrMalformed},
		{"shorter than the fixed header", []byte{0, 3, 0, 9, 0, 0, 0}, wire.ErrMalformed},
		{"unknown API key", []byte{0x03, 0xe7, 0, 0, 0, 0, 0, 1, 0xff, 0xff}, wire.ErrUnknownAPI},
		{"negative API key", []byte{0xff, 0xff, 0, 0, 0, 0, 0, 1, 0xff, 0xff}, wire.ErrUnknownAPI},
		{"version beyond kmsg", []byte{0, 3, 0x7f, 0xff, 0, 0, 0, 1, 0xff, 0xff}, wire.ErrUnsupportedVersion},
		{"negative version", []byte{0, 3, 0xff, 0xff, 0, 0, 0, 1, 0xff, 0xff}, wire.ErrUnsupportedVersion},
		{"client id longer than the frame", []byte{0, 18, 0, 0, 0, 0, 0, 1, 0, 9, 'a'}, wire.ErrMalformed},
		{"no client id", []byte{0, 18, 0, 0, 0, 0, 0, 1}, wire.ErrMalformed},
		{"truncated body", meta[:len(meta)-3], wire.ErrMalformed},
		{"flexible header without its tag section", []byte{0, 18, 0, 3, 0, 0, 0, 1, 0xff, 0xff}, wire.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, req, err := wire.ParseRequest(tt.frame)
			if !errors.Is(err, tt.want) || req != nil {
				t.Fatalf("ParseRequest = %v, %v; want %v", req, err, tt.want)
			}
		})
	}
}

func TestParseRequestDecodesHeaderAndBody(t *testing.T) {
	tests := []struct {
		name     string
		clientID string
		key, v   int16
	}{
		{"non-flexible with client id", "app-1", 0, 3},
		{"flexible with client id", "app-2", 1, 18},
		{"empty client id", "", 18, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := request(tt.key, tt.v)
			h, req, err := wire.ParseRequest(encode(want, 42, tt.clientID))
			if err != nil {
				t.Fatal(err)
			}
			if h != (wire.Header{Key: tt.key, Version: tt.v, CorrelationID: 42, ClientID: tt.clientID}) {
				t.Fatalf("header %+v", h)
			}
			if !bytes.Equal(req.AppendTo(nil), want.AppendTo(nil)) {
				t.Fatal("decoded body differs from the one sent")
			}
		})
	}
	// ControlledShutdown v0 has header v0: no client id, the body follows the correlation id.
	h, req, err := wire.ParseRequest([]byte{0, 7, 0, 0, 0, 0, 0, 3, 0, 0, 0, 5})
	if err != nil || h.ClientID != "" || req.(*kmsg.ControlledShutdownRequest).BrokerID != 5 {
		t.Fatalf("ControlledShutdown v0: %+v, %+v, %v", h, req, err)
	}
	// A null client id (length -1) reads as "".
	h, _, err = wire.ParseRequest([]byte{0, 18, 0, 0, 0, 0, 0, 9, 0xff, 0xff})
	if err != nil || h.ClientID != "" || h.CorrelationID != 9 {
		t.Fatalf("null client id: %+v, %v", h, err)
	}
}

func TestAppendResponseFramesHeaderByVersion(t *testing.T) {
	tests := []struct {
		name    string
		resp    kmsg.Response
		tagByte bool
	}{
		{"non-flexible Metadata", func() kmsg.Response { r := kmsg.NewPtrMetadataResponse(); r.SetVersion(8); return r }(), false},
		{"flexible Metadata", func() kmsg.Response { r := kmsg.NewPtrMetadataResponse(); r.SetVersion(9); return r }(), true},
		{"flexible ApiVersions keeps header v0", func() kmsg.Response { r := kmsg.NewPtrApiVersionsResponse(); r.SetVersion(3); return r }(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte("prev")
			out := wire.AppendResponse(dst, 77, tt.resp)
			if string(out[:4]) != "prev" {
				t.Fatal("AppendResponse overwrote dst")
			}
			frame, err := wire.ReadFrame(bytes.NewReader(out[4:]), 1<<20, nil)
			if err != nil {
				t.Fatal(err)
			}
			if corr := int32(binary.BigEndian.Uint32(frame)); corr != 77 {
				t.Fatalf("correlation id %d", corr)
			}
			body := frame[4:]
			if tt.tagByte {
				if body[0] != 0 {
					t.Fatalf("flexible header tag section %x, want 0", body[0])
				}
				body = body[1:]
			}
			if !bytes.Equal(body, tt.resp.AppendTo(nil)) {
				t.Fatal("body is not the response's encoding")
			}
		})
	}
}

// serve answers each request on one accepted connection with answer(req), until the client
// closes.
func serve(t *testing.T, answer func(h wire.Header, req kmsg.Request) []byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		for {
			frame, err := wire.ReadFrame(c, 1<<20, nil)
			if err != nil {
				return
			}
			h, req, err := wire.ParseRequest(frame)
			if err != nil {
				return
			}
			out := answer(h, req)
			if out == nil {
				continue
			}
			if _, err := c.Write(out); err != nil {
				return
			}
		}
	}()
	return ln.Addr().String()
}

func TestClientRoundTripsRequests(t *testing.T) {
	addr := serve(t, func(h wire.Header, req kmsg.Request) []byte {
		resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
		resp.SetVersion(h.Version)
		resp.ApiKeys = []kmsg.ApiVersionsResponseApiKey{{ApiKey: 0, MinVersion: 3, MaxVersion: 9}}
		resp.ThrottleMillis = int32(len(h.ClientID))
		return wire.AppendResponse(nil, h.CorrelationID, resp)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cl, err := wire.Dial(ctx, nil, addr, "me")
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for v := int16(0); v <= 3; v++ {
		req := kmsg.NewPtrApiVersionsRequest()
		req.SetVersion(v)
		resp, err := cl.Request(ctx, req)
		if err != nil {
			t.Fatalf("v%d: %v", v, err)
		}
		r := resp.(*kmsg.ApiVersionsResponse)
		if len(r.ApiKeys) != 1 || r.ApiKeys[0].MaxVersion != 9 || (v >= 1 && r.ThrottleMillis != 2) {
			t.Fatalf("v%d: response %+v", v, r)
		}
	}
}

func TestClientRefusesAMismatchedResponse(t *testing.T) {
	tests := []struct {
		name   string
		answer func(h wire.Header, req kmsg.Request) []byte
	}{
		{"wrong correlation id", func(h wire.Header, req kmsg.Request) []byte {
			r := req.ResponseKind()
			r.SetVersion(h.Version)
			return wire.AppendResponse(nil, h.CorrelationID+1, r)
		}},
		{"frame too short for a correlation id", func(h wire.Header, req kmsg.Request) []byte {
			return prefixed([]byte{0, 0})
		}},
		{"unexpected header tags", func(h wire.Header, req kmsg.Request) []byte {
			return prefixed(append(binary.BigEndian.AppendUint32(nil, uint32(h.CorrelationID)), 1, 0, 0))
		}},
		{"truncated body", func(h wire.Header, req kmsg.Request) []byte {
			return prefixed(append(binary.BigEndian.AppendUint32(nil, uint32(h.CorrelationID)), 0, 0, 0))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := serve(t, tt.answer)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			cl, err := wire.Dial(ctx, nil, addr, "me")
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			req := kmsg.NewPtrMetadataRequest()
			req.SetVersion(9)
			if _, err := cl.Request(ctx, req); !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("Request = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestClientRequestEndsWithItsContext(t *testing.T) {
	addr := serve(t, func(wire.Header, kmsg.Request) []byte { return nil }) // never answers
	cl, err := wire.Dial(context.Background(), nil, addr, "me")
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	req := kmsg.NewPtrApiVersionsRequest()
	if _, err := cl.Request(ctx, req); err == nil {
		t.Fatal("a request with no answer returned no error after its context was cancelled")
	}
	dctx, dcancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer dcancel()
	if _, err := cl.Request(dctx, req); err == nil || !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err) {
		t.Fatalf("request past its deadline: %v", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestDialFailsForAClosedPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if _, err := wire.Dial(context.Background(), nil, addr, "me"); err == nil {
		t.Fatal("Dial to a closed port succeeded")
	}
}

func TestRequestReusingKeepsItsAnswerUntilTheNextRequestReusing(t *testing.T) {
	// The server answers each Fetch with one partition whose record bytes are the request's
	// fetch offset, repeated.
	addr := serve(t, func(h wire.Header, req kmsg.Request) []byte {
		fr := req.(*kmsg.FetchRequest)
		resp := fr.ResponseKind().(*kmsg.FetchResponse)
		resp.SetVersion(h.Version)
		off := fr.Topics[0].Partitions[0].FetchOffset
		p := kmsg.NewFetchResponseTopicPartition()
		p.RecordBatches = bytes.Repeat([]byte{byte(off)}, 64)
		top := kmsg.NewFetchResponseTopic()
		top.Topic = "t"
		top.Partitions = append(top.Partitions, p)
		resp.Topics = append(resp.Topics, top)
		return wire.AppendResponse(nil, h.CorrelationID, resp)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cl, err := wire.Dial(ctx, nil, addr, "me")
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	fetch := func(reuse bool, off int64) []byte {
		req := kmsg.NewPtrFetchRequest()
		req.SetVersion(11)
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = "t"
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.FetchOffset = off
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		do := cl.Request
		if reuse {
			do = cl.RequestReusing
		}
		resp, err := do(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.(*kmsg.FetchResponse).Topics[0].Partitions[0].RecordBatches
	}
	first := fetch(true, 1)
	other := fetch(false, 2) // a plain Request in between leaves the reused buffer alone
	if !bytes.Equal(first, bytes.Repeat([]byte{1}, 64)) || !bytes.Equal(other, bytes.Repeat([]byte{2}, 64)) {
		t.Fatalf("after a plain Request: first %v, other %v", first[:4], other[:4])
	}
	second := fetch(true, 3)
	if !bytes.Equal(second, bytes.Repeat([]byte{3}, 64)) {
		t.Fatalf("second answer %v", second[:4])
	}
	if &first[0] != &second[0] {
		t.Fatal("RequestReusing read its second answer into a new buffer")
	}
	if !bytes.Equal(other, bytes.Repeat([]byte{2}, 64)) {
		t.Fatal("RequestReusing overwrote the answer of a plain Request")
	}
}
