package produce

import (
	"context"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestNewRefusesContradictingOptionsBeforeDialing(t *testing.T) {
	// No seed broker listens here; a refusal must not need one.
	p, err := New(t.Context(), NoLoss, kgo.SeedBrokers("127.0.0.1:1"),
		kgo.RequiredAcks(kgo.LeaderAck()), kgo.ManualFlushing())
	if p != nil || !errors.Is(err, ErrUnsafeConfig) {
		t.Fatalf("New = %v, %v; want ErrUnsafeConfig", p, err)
	}
	if got := settingsOf(err); !slices.Equal(got, []string{"RequiredAcks", "ManualFlushing"}) {
		t.Fatalf("settings named = %v", got)
	}
}

func TestNewRefusesTransactionalID(t *testing.T) {
	_, err := New(t.Context(), NoLoss, kgo.SeedBrokers("127.0.0.1:1"), kgo.TransactionalID("tx"))
	if got := settingsOf(err); !slices.Equal(got, []string{"TransactionalID"}) || !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("New with a transactional id: %v", err)
	}
}

func TestNewFailsWhenNoSeedBrokerAnswers(t *testing.T) {
	// A port that was just free: connections are refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	p, err := New(ctx, NoLoss, kgo.SeedBrokers(addr))
	if p != nil || err == nil {
		t.Fatalf("New = %v, %v; want an error", p, err)
	}
	if errors.Is(err, ErrUnsafeConfig) || errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("a connection failure reported as a config error: %v", err)
	}
}

func TestPromiseForBindsARepeatedCallbackOnceAndNeverMixesCallbacks(t *testing.T) {
	p := &Producer{idemSafe: true}
	var calls []string
	// Closures of one literal, each capturing its own name: the same code,
	// different callbacks.
	named := func(name string) func(*kgo.Record, error) {
		return func(r *kgo.Record, err error) { calls = append(calls, name+":"+string(r.Value)) }
	}
	f, g := named("f"), named("g")

	// Interleaved, neither repeats back to back: every promise is fresh,
	// and each calls its own callback.
	order := []func(*kgo.Record, error){f, g, f, g}
	for i, cb := range order {
		p.promiseFor(cb)(&kgo.Record{Value: []byte{'0' + byte(i)}}, nil)
	}
	if want := []string{"f:0", "g:1", "f:2", "g:3"}; !slices.Equal(calls, want) {
		t.Fatalf("callbacks called %v, want %v", calls, want)
	}
	if b := p.bound.Load(); b != nil {
		t.Fatalf("a callback was bound without repeating: %v", b.callback)
	}

	// f twice in a row: bound, and from then on the same promise.
	first := p.promiseFor(f)
	second := p.promiseFor(f)
	third := p.promiseFor(f)
	if funcIdentity(second) != funcIdentity(third) || funcIdentity(first) == funcIdentity(third) {
		t.Fatal("a callback passed repeatedly is not bound once")
	}
	// g does not get f's binding, and f keeps it.
	calls = nil
	p.promiseFor(g)(&kgo.Record{Value: []byte("x")}, nil)
	p.promiseFor(f)(&kgo.Record{Value: []byte("y")}, errors.New("broker said no"))
	if want := []string{"g:x", "f:y"}; !slices.Equal(calls, want) {
		t.Fatalf("callbacks called %v, want %v", calls, want)
	}
}

func TestBoundPromiseTranslatesErrors(t *testing.T) {
	p := &Producer{idemSafe: true}
	var got []error
	cb := func(_ *kgo.Record, err error) { got = append(got, err) }
	p.promiseFor(cb)
	promise := p.promiseFor(cb) // bound now
	promise(&kgo.Record{Topic: "t", Partition: 3}, nil)
	promise(&kgo.Record{Topic: "t", Partition: 3}, kerr.MessageTooLarge)
	if len(got) != 2 || got[0] != nil {
		t.Fatalf("callback saw %v", got)
	}
	var de *DeliveryError
	if !errors.As(got[1], &de) || de.Topic != "t" || de.Partition != 3 || !errors.Is(got[1], ErrNotWritten) || !errors.Is(got[1], kerr.MessageTooLarge) {
		t.Fatalf("bound promise passed %v, want a DeliveryError, not written, for MessageTooLarge", got[1])
	}
}

func TestPromiseForKeepsEveryCallbackPerRecordApart(t *testing.T) {
	p := &Producer{idemSafe: true}
	var n int
	// Distinct callbacks taking turns, as closures made per record are:
	// none is bound, each gets a binding of its own.
	cbs := []func(*kgo.Record, error){
		func(*kgo.Record, error) { n++ },
		func(*kgo.Record, error) { n += 2 },
	}
	r := &kgo.Record{Topic: "t"}
	var promises []func(*kgo.Record, error)
	want := 0
	for i := range 1000 {
		promises = append(promises, p.promiseFor(cbs[i%2]))
		want += 1 + i%2
	}
	// Outcomes arrive after the sends, as they do with records in flight.
	for _, promise := range promises {
		promise(r, nil)
	}
	if n != want {
		t.Fatalf("callbacks counted %d, want %d: a callback was lost or mixed up", n, want)
	}
}
