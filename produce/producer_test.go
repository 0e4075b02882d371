package produce

import (
	"context"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

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
