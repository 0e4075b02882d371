package server_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/wire"
)

// advertised asks the broker for its ApiVersions.
func advertised(t *testing.T, b *fzBroker) []kmsg.ApiVersionsResponseApiKey {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := kmsg.NewPtrApiVersionsRequest()
	req.SetVersion(3)
	resp, err := b.alive.Request(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	return resp.(*kmsg.ApiVersionsResponse).ApiKeys
}

// defaultRequest is kmsg's default request for key at version v, answerable (acks=-1 for
// Produce) and with its waits clamped.
func defaultRequest(key, v int16) kmsg.Request {
	req := kmsg.RequestForKey(key)
	req.SetVersion(v)
	if p, ok := req.(*kmsg.ProduceRequest); ok {
		p.Acks = -1
	}
	clamp(req)
	return req
}

func frameOf(req kmsg.Request, corr int32) []byte {
	return kmsg.NewRequestFormatter(kmsg.FormatterClientID("server-test")).AppendRequest(nil, req, corr)[4:]
}

func TestEveryAdvertisedVersionIsAnsweredAndVersionsOutsideAreRefused(t *testing.T) {
	t.Parallel()
	b := fzStart(t)
	keys := advertised(t, b)
	if len(keys) < 20 {
		t.Fatalf("only %d APIs advertised", len(keys))
	}
	for _, k := range keys {
		name := kmsg.NameForKey(k.ApiKey)
		if k.MinVersion < 0 || k.MinVersion > k.MaxVersion || kmsg.RequestForKey(k.ApiKey).MaxVersion() < k.MaxVersion {
			t.Errorf("%s advertised as v%d-v%d, which kmsg cannot decode", name, k.MinVersion, k.MaxVersion)
			continue
		}
		for _, v := range []int16{k.MinVersion, (k.MinVersion + k.MaxVersion) / 2, k.MaxVersion} {
			t.Run(fmt.Sprintf("%s v%d answered", name, v), func(t *testing.T) {
				req := defaultRequest(k.ApiKey, v)
				answer, closed := b.send(t, frameOf(req, 11), true)
				if closed {
					t.Fatalf("the broker closed the connection on %s v%d, which it advertises", name, v)
				}
				decodeAnswer(t, wire.Header{Key: k.ApiKey, Version: v, CorrelationID: 11}, req, answer)
			})
		}
		if k.ApiKey == 18 {
			continue // ApiVersions outside the range is answered; see the next test
		}
		for _, v := range []int16{k.MinVersion - 1, k.MaxVersion + 1} {
			if v < 0 || v > kmsg.RequestForKey(k.ApiKey).MaxVersion() {
				continue
			}
			t.Run(fmt.Sprintf("%s v%d refused", name, v), func(t *testing.T) {
				if _, closed := b.send(t, frameOf(defaultRequest(k.ApiKey, v), 12), true); !closed {
					t.Fatalf("the broker answered %s v%d, which it does not advertise", name, v)
				}
				b.checkAlive(t)
			})
		}
	}
}

func TestApiVersionsOfAnUnknownVersionIsAnsweredInV0WithTheList(t *testing.T) {
	t.Parallel()
	b := fzStart(t)
	// ApiVersions v127: the header is v2 (flexible) but kmsg cannot decode the body; the broker
	// must still answer in v0 so the client can retry with a version it speaks.
	frame := []byte{0, 18, 0, 127, 0, 0, 0, 21, 0xff, 0xff, 0}
	answer, closed := b.send(t, frame, true)
	if closed {
		t.Fatal("the broker closed the connection on a newer ApiVersions")
	}
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(0)
	if corr := int32(binary.BigEndian.Uint32(answer)); corr != 21 {
		t.Fatalf("correlation id %d", corr)
	}
	if err := resp.ReadFrom(answer[4:]); err != nil {
		t.Fatalf("answer is not ApiVersions v0: %v", err)
	}
	if resp.ErrorCode != kerr.UnsupportedVersion.Code || len(resp.ApiKeys) < 20 {
		t.Fatalf("error %d with %d keys; want UNSUPPORTED_VERSION with the list", resp.ErrorCode, len(resp.ApiKeys))
	}
}

func TestBadFramesCloseTheirConnectionOnly(t *testing.T) {
	t.Parallel()
	b := fzStart(t)
	tests := []struct {
		name  string
		frame []byte
	}{
		{"unknown API key", []byte{0x03, 0xe7, 0, 0, 0, 0, 0, 1, 0xff, 0xff}},
		{"API the broker does not serve", frameOf(defaultRequest(7, 1), 1)}, // ControlledShutdown
		{"header only", []byte{0, 3, 0, 1}},
		{"truncated Metadata body", frameOf(defaultRequest(3, 9), 1)[:14]},
		{"client id longer than the frame", []byte{0, 3, 0, 1, 0, 0, 0, 1, 0x7f, 0xff}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, closed := b.send(t, tt.frame, true); !closed {
				t.Fatal("the broker answered instead of closing the connection")
			}
			b.checkAlive(t)
		})
	}
	t.Run("frame over socket.request.max.bytes", func(t *testing.T) {
		big := make([]byte, 1<<20+1)
		copy(big, []byte{0, 18, 0, 0, 0, 0, 0, 1, 0xff, 0xff})
		if _, closed := b.send(t, big, true); !closed {
			t.Fatal("the broker answered an oversized frame")
		}
		b.checkAlive(t)
	})
}
