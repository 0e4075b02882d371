package kafkatest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/kafkaguard/kafkaguard/internal/testkit"
	"github.com/kafkaguard/kafkaguard/kafkatest"
)

// A test can run its application's TLS and SASL configuration against the bundled cluster:
// CreateTopic still works (the cluster reaches itself with its own credentials), a client with
// the right SCRAM password over TLS produces across three brokers with acks=all, and a wrong
// password is refused.
func TestTLSAndSASLOptionsSecureTheCluster(t *testing.T) {
	ca := testkit.NewCA(t)
	c := kafkatest.NewCluster(t, kafkatest.Brokers(3), kafkatest.BrokerConfig("min.insync.replicas", "3"),
		kafkatest.TLS(ca.Issue(t, "broker").TLS, nil),
		kafkatest.SASL([]string{"SCRAM-SHA-512"}, map[string]string{"app": "app-secret"}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.CreateTopic(ctx, "secure", 1, 3, nil); err != nil {
		t.Fatal(err)
	}
	cl := testkit.Client(t, c.Bootstrap(), kgo.DialTLSConfig(ca.ClientTLS()), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.SASL(scram.Auth{User: "app", Pass: "app-secret"}.AsSha512Mechanism()))
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "secure", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("produce as app over TLS: %v", err)
	}
	bad := testkit.Client(t, c.Bootstrap(), kgo.DialTLSConfig(ca.ClientTLS()),
		kgo.SASL(scram.Auth{User: "app", Pass: "wrong"}.AsSha512Mechanism()))
	if err := bad.Ping(ctx); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("a wrong password: %v, want SASL_AUTHENTICATION_FAILED", err)
	}
}
