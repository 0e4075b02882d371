package wire_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/wire"
)

// FuzzParseRequest feeds arbitrary frames to ParseRequest. It must never panic; a failure must
// be one of the package's sentinel errors with no request; a success must agree with the frame's
// header, and re-encoding the decoded request must give a frame that decodes to the same bytes
// again (what the broker would answer from is what the client meant).
func FuzzParseRequest(f *testing.F) {
	// Besides the checked-in corpus (realistic requests of every served API), every API kmsg
	// knows at every version, default-filled, so the fuzzer starts from each body layout.
	for key := int16(0); key <= kmsg.MaxKey; key++ {
		req := kmsg.RequestForKey(key)
		if req == nil {
			continue
		}
		for v := int16(0); v <= req.MaxVersion(); v++ {
			req.SetVersion(v)
			f.Add(encode(req, 7, "seed"))
		}
	}
	f.Add([]byte{})
	f.Add([]byte{0, 18, 0, 99, 0, 0, 0, 1}) // ApiVersions v99: no client id at all
	f.Add([]byte{0, 0, 0, 9, 0, 0, 0, 1, 0xff, 0xff})

	f.Fuzz(func(t *testing.T, frame []byte) {
		in := bytes.Clone(frame)
		h, req, err := wire.ParseRequest(frame)
		if !bytes.Equal(in, frame) {
			t.Fatal("ParseRequest modified its input")
		}
		if err != nil {
			if req != nil {
				t.Fatalf("error %v together with a request", err)
			}
			if !errors.Is(err, wire.ErrMalformed) && !errors.Is(err, wire.ErrUnknownAPI) && !errors.Is(err, wire.ErrUnsupportedVersion) {
				t.Fatalf("error %v is none of the sentinels", err)
			}
			return
		}
		peek, ok := wire.PeekHeader(frame)
		if !ok || peek.Key != h.Key || peek.Version != h.Version || peek.CorrelationID != h.CorrelationID {
			t.Fatalf("header %+v, PeekHeader %+v (%v)", h, peek, ok)
		}
		if req.Key() != h.Key || req.GetVersion() != h.Version {
			t.Fatalf("request %s v%d for header key %d v%d", kmsg.NameForKey(req.Key()), req.GetVersion(), h.Key, h.Version)
		}
		if h.Key == 7 && h.Version == 0 {
			return // kmsg's formatter writes ControlledShutdown v0 without its body
		}
		again := encode(req, h.CorrelationID, h.ClientID)
		h2, req2, err := wire.ParseRequest(again)
		if err != nil {
			t.Fatalf("re-encoded %s v%d does not decode: %v", kmsg.NameForKey(h.Key), h.Version, err)
		}
		if h2 != h {
			t.Fatalf("re-encoded header %+v, was %+v", h2, h)
		}
		if third := encode(req2, h.CorrelationID, h.ClientID); !bytes.Equal(third, again) {
			t.Fatalf("%s v%d encodes differently after a round trip", kmsg.NameForKey(h.Key), h.Version)
		}
	})
}

// FuzzReadFrame feeds arbitrary byte streams to ReadFrame with a small limit: it must never
// panic, never return more than the limit, and return exactly the bytes the prefix announced.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 0, 0, 3, 'a', 'b', 'c'})
	f.Add([]byte{0, 0, 0, 3, 'a'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0x7f, 0xff, 0xff, 0xff, 0})
	f.Add([]byte{0, 0})
	const limit = 64
	f.Fuzz(func(t *testing.T, stream []byte) {
		frame, err := wire.ReadFrame(bytes.NewReader(stream), limit, make([]byte, 0, 8))
		if err != nil {
			if frame != nil {
				t.Fatalf("error %v with a %d-byte frame", err, len(frame))
			}
			return
		}
		n := binary.BigEndian.Uint32(stream)
		if len(frame) > limit || uint32(len(frame)) != n || !bytes.Equal(frame, stream[4:4+n]) {
			t.Fatalf("frame of %d bytes for prefix %d from a %d-byte stream", len(frame), n, len(stream))
		}
	})
}
