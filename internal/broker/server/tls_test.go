package server_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/internal/broker/server"
	"github.com/kafkaguard/kafkaguard/internal/testkit"
)

// tlsCluster starts brokers whose listeners and replica fetchers speak TLS with a certificate
// of a throwaway CA; clientCAs, if set, makes them require client certificates it signed.
func tlsCluster(t *testing.T, brokers int, ca *testkit.CA, clientCAs bool) *testCluster {
	t.Helper()
	pool := ca.Pool
	if !clientCAs {
		pool = nil
	}
	sec, err := server.NewTLS(ca.Issue(t, "broker").TLS, pool)
	if err != nil {
		t.Fatal(err)
	}
	return startCluster(t, brokers, true, func(cfg *server.Config) {
		cfg.TLS = sec
		cfg.Dialer = nil // the default: TLS to the other brokers
	})
}

// franz-go produces acks=all to a topic replicated over TLS and reads it back; the records
// went out of the log files by copying, never by sendfile(2), which would put plain bytes on
// a TLS connection.
func TestTLSListenerServesFranzGoAndCopiesFetchesInsteadOfSendfile(t *testing.T) {
	ca := testkit.NewCA(t)
	c := tlsCluster(t, 2, ca, false)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.addrs...), kgo.DialTLSConfig(ca.ClientTLS()), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 1, 2, map[string]*string{"min.insync.replicas": new("2")}, "secure"); err != nil {
		t.Fatal(err)
	}
	const n = 50
	for i := range n {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "secure", Value: fmt.Appendf(nil, "v%d", i)}).FirstErr(); err != nil {
			t.Fatalf("produce %d over TLS: %v", i, err)
		}
	}
	got := testkit.ReadAll(ctx, t, c.addrs, "secure", kgo.DialTLSConfig(ca.ClientTLS()))
	if len(got) != n {
		t.Fatalf("read %d records back over TLS, want %d", len(got), n)
	}
	for i, r := range got {
		if want := fmt.Sprintf("v%d", i); string(r.Value) != want {
			t.Fatalf("record %d = %q, want %q", i, r.Value, want)
		}
	}
	for id, b := range c.nodes {
		if sent := b.SendfileBytes(); sent != 0 {
			t.Errorf("broker %d sent %d bytes with sendfile on TLS connections", id, sent)
		}
	}
}

// A plaintext client gets nothing from a TLS listener; with client certificates required, a
// TLS client without one is refused and one with a certificate of the CA is served.
func TestTLSListenerRefusesPlaintextAndClientsWithoutACertificate(t *testing.T) {
	ca := testkit.NewCA(t)
	c := tlsCluster(t, 1, ca, true)
	ping := func(opts ...kgo.Opt) error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.addrs...)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		return cl.Ping(ctx)
	}
	if err := ping(); err == nil {
		t.Error("a plaintext client was answered by a TLS listener")
	}
	if err := ping(kgo.DialTLSConfig(ca.ClientTLS())); err == nil {
		t.Error("a TLS client without a certificate was served though client certificates are required")
	}
	other := testkit.NewCA(t)
	if err := ping(kgo.DialTLSConfig(&tls.Config{RootCAs: ca.Pool, Certificates: []tls.Certificate{other.Issue(t, "stranger").TLS}})); err == nil {
		t.Error("a client certificate of another CA was accepted")
	}
	if err := ping(kgo.DialTLSConfig(ca.ClientTLS(ca.Issue(t, "client")))); err != nil {
		t.Errorf("a client with a certificate of the CA: %v", err)
	}
}
