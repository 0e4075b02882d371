package server_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	ksasl "github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/kafkaguard/kafkaguard/internal/broker/sasl"
	"github.com/kafkaguard/kafkaguard/internal/broker/server"
	"github.com/kafkaguard/kafkaguard/internal/broker/wire"
	"github.com/kafkaguard/kafkaguard/internal/testkit"
)

// saslConfig enables every mechanism for alice, with ib for the brokers' own connections.
func saslConfig() *server.SASL {
	return &server.SASL{Mechanisms: sasl.Mechanisms(), Users: map[string]string{"alice": "alice-secret", "ib": "ib-secret"}, InterBroker: "ib"}
}

func saslCluster(t *testing.T, brokers int) *testCluster {
	t.Helper()
	return startCluster(t, brokers, true, func(cfg *server.Config) { cfg.SASL = saslConfig() })
}

// authed returns a franz-go client that authenticates as alice with SCRAM-SHA-512.
func authed(t *testing.T, c *testCluster, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.addrs...),
		kgo.SASL(scram.Auth{User: "alice", Pass: "alice-secret"}.AsSha512Mechanism())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// closedAfter reports whether the broker closes cl's connection: the next request gets no answer.
func closedAfter(t *testing.T, cl *wire.Client) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := kmsg.NewPtrApiVersionsRequest()
	req.SetVersion(3)
	_, err := cl.Request(ctx, req)
	if err != nil && ctx.Err() != nil {
		t.Fatalf("the broker neither answered nor closed the connection: %v", err)
	}
	return err != nil
}

// A client that fails authentication gets SASL_AUTHENTICATION_FAILED with Kafka's text and its
// connection is closed; the right password on a new connection is accepted.
func TestSASLWrongPasswordIsRefusedAndTheConnectionClosed(t *testing.T) {
	c := saslCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, m := range []ksasl.Mechanism{
		plain.Auth{User: "alice", Pass: "wrong"}.AsMechanism(),
		scram.Auth{User: "alice", Pass: "wrong"}.AsSha256Mechanism(),
		scram.Auth{User: "alice", Pass: "wrong"}.AsSha512Mechanism(),
	} {
		cl := testClient(t, c.addrs[0])
		err := cl.Authenticate(ctx, m)
		if !errors.Is(err, kerr.SaslAuthenticationFailed) {
			t.Fatalf("%s with a wrong password: %v, want SASL_AUTHENTICATION_FAILED", m.Name(), err)
		}
		if !closedAfter(t, cl) {
			t.Fatalf("%s: the connection stayed open after a failed authentication", m.Name())
		}
		ok := testClient(t, c.addrs[0])
		good := map[string]ksasl.Mechanism{
			sasl.Plain:       plain.Auth{User: "alice", Pass: "alice-secret"}.AsMechanism(),
			sasl.ScramSHA256: scram.Auth{User: "alice", Pass: "alice-secret"}.AsSha256Mechanism(),
			sasl.ScramSHA512: scram.Auth{User: "alice", Pass: "alice-secret"}.AsSha512Mechanism(),
		}[m.Name()]
		if err := ok.Authenticate(ctx, good); err != nil {
			t.Fatalf("%s with the right password: %v", m.Name(), err)
		}
		if closedAfter(t, ok) {
			t.Fatalf("%s: an authenticated connection was closed", m.Name())
		}
	}
}

// Before authentication only ApiVersions, SaslHandshake and SaslAuthenticate are served: a
// Produce closes the connection unanswered and appends nothing.
func TestSASLProduceBeforeAuthenticationGetsNothingAndAppendsNothing(t *testing.T) {
	c := saslCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	adm := kadm.NewClient(authed(t, c))
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "guarded"); err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", c.addrs[0], 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	av := kmsg.NewPtrApiVersionsRequest()
	av.SetVersion(3)
	writeFrame(t, conn, av)
	if _, err := wire.ReadFrame(conn, 1<<20, nil); err != nil {
		t.Fatalf("ApiVersions before authentication: %v", err)
	}
	writeFrame(t, conn, produceRequest("guarded", 5000, 0))
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("after an unauthenticated Produce: read %d bytes, %v; want the connection closed", n, err)
	}
	ends, err := adm.ListEndOffsets(ctx, "guarded")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := ends.Lookup("guarded", 0); o.Err != nil || o.Offset != 0 {
		t.Fatalf("log end offset after the unauthenticated Produce: %+v, want 0", o)
	}
}

// A mechanism that is not enabled is answered UNSUPPORTED_SASL_MECHANISM with the enabled ones,
// and the connection is closed.
func TestSASLHandshakeWithADisabledMechanismListsTheEnabledOnes(t *testing.T) {
	c := startCluster(t, 1, true, func(cfg *server.Config) {
		cfg.SASL = &server.SASL{Mechanisms: []string{sasl.ScramSHA512}, Users: map[string]string{"alice": "alice-secret"}}
	})
	cl := testClient(t, c.addrs[0])
	req := kmsg.NewPtrSASLHandshakeRequest()
	req.SetVersion(1)
	req.Mechanism = sasl.Plain
	resp := mustRequest(t, cl, req).(*kmsg.SASLHandshakeResponse)
	if resp.ErrorCode != kerr.UnsupportedSaslMechanism.Code || !slices.Equal(resp.SupportedMechanisms, []string{sasl.ScramSHA512}) {
		t.Fatalf("handshake for a disabled mechanism: %+v", resp)
	}
	if !closedAfter(t, cl) {
		t.Fatal("the connection stayed open after a refused handshake")
	}
}

// Replica fetchers authenticate too, with the first enabled of SCRAM-SHA-512, SCRAM-SHA-256,
// PLAIN, OAUTHBEARER: acks=all with min.insync.replicas=2 needs the follower to fetch from the
// leader's SASL listener.
func TestSASLReplicaFetchersAuthenticateToTheLeader(t *testing.T) {
	for _, mechs := range [][]string{{sasl.ScramSHA512, sasl.Plain}, {sasl.ScramSHA256}, {sasl.Plain}, {sasl.OAuthBearer}} {
		t.Run(strings.Join(mechs, ","), func(t *testing.T) {
			c := startCluster(t, 2, true, func(cfg *server.Config) {
				cfg.SASL = saslConfig()
				cfg.SASL.Mechanisms = mechs
			})
			var m ksasl.Mechanism
			switch mechs[0] {
			case sasl.ScramSHA512:
				m = scram.Auth{User: "alice", Pass: "alice-secret"}.AsSha512Mechanism()
			case sasl.ScramSHA256:
				m = scram.Auth{User: "alice", Pass: "alice-secret"}.AsSha256Mechanism()
			case sasl.Plain:
				m = plain.Auth{User: "alice", Pass: "alice-secret"}.AsMechanism()
			default:
				m = oauth.Auth{Token: sasl.UnsecuredToken("alice", time.Minute)}.AsMechanism()
			}
			replicatedProduce(t, c, m)
		})
	}
}

// replicatedProduce creates a topic of two replicas and min.insync.replicas=2 and produces to
// it with acks=all, authenticating with m.
func replicatedProduce(t *testing.T, c *testCluster, m ksasl.Mechanism) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.addrs...), kgo.SASL(m))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 2, map[string]*string{"min.insync.replicas": new("2")}, "replicated"); err != nil {
		t.Fatal(err)
	}
	leader := -1
	testkit.WaitFor(t, 10*time.Second, "a leader of replicated-0 with both replicas in its ISR", func() bool {
		for i, b := range c.nodes {
			if st, ok := b.PartitionState("replicated", 0); ok && st.Leader == b.ID() && len(st.ISR) == 2 {
				leader = i
				return true
			}
		}
		return false
	})
	lc := testClient(t, c.addrs[leader])
	if err := lc.Authenticate(ctx, m); err != nil {
		t.Fatal(err)
	}
	resp := mustRequest(t, lc, produceRequest("replicated", 5000, 0)).(*kmsg.ProduceResponse)
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 {
		t.Fatalf("acks=all produce with a follower behind SASL: %v", kerr.ErrorForCode(p.ErrorCode))
	}
}

// AlterUserScramCredentials (what kafka-configs.sh sends) creates a user who can then
// authenticate with SCRAM; DescribeUserScramCredentials lists the configured and created users;
// deleting the credential refuses the user again.
func TestSASLScramCredentialsCreatedOverTheProtocolAuthenticate(t *testing.T) {
	c := saslCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	adm := kadm.NewClient(authed(t, c))
	res, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: "carol", Mechanism: kadm.ScramSha256, Iterations: 8192, Password: "carol-secret"}})
	if err != nil || res.AllFailed() {
		t.Fatalf("alter: %v %+v", err, res)
	}
	if err := res.Error(); err != nil {
		t.Fatal(err)
	}
	desc, err := adm.DescribeUserSCRAMs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for user, d := range desc {
		for _, ci := range d.CredInfos {
			got = append(got, fmt.Sprintf("%s %s %d", user, ci.Mechanism, ci.Iterations))
		}
	}
	slices.Sort(got)
	want := []string{"alice SCRAM-SHA-256 4096", "alice SCRAM-SHA-512 4096", "carol SCRAM-SHA-256 8192", "ib SCRAM-SHA-256 4096", "ib SCRAM-SHA-512 4096"}
	if !slices.Equal(got, want) {
		t.Fatalf("described\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	carol := testClient(t, c.addrs[0])
	if err := carol.Authenticate(ctx, scram.Auth{User: "carol", Pass: "carol-secret"}.AsSha256Mechanism()); err != nil {
		t.Fatalf("carol after her credential was created: %v", err)
	}
	if res, err := adm.AlterUserSCRAMs(ctx, []kadm.DeleteSCRAM{{User: "carol", Mechanism: kadm.ScramSha256}}, nil); err != nil || res.Error() != nil {
		t.Fatalf("delete: %v %v", err, res.Error())
	}
	again := testClient(t, c.addrs[0])
	if err := again.Authenticate(ctx, scram.Auth{User: "carol", Pass: "carol-secret"}.AsSha256Mechanism()); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("carol after her credential was deleted: %v, want SASL_AUTHENTICATION_FAILED", err)
	}
	if res, err := adm.AlterUserSCRAMs(ctx, []kadm.DeleteSCRAM{{User: "nobody", Mechanism: kadm.ScramSha256}}, nil); err != nil || !errors.Is(res.Error(), kerr.ResourceNotFound) {
		t.Fatalf("deleting a credential that does not exist: %v %v, want RESOURCE_NOT_FOUND", err, res.Error())
	}
}

// Before authentication a request frame may be at most 512 KiB (Kafka's
// sasl.server.max.receive.size): a larger size closes the connection at once, without
// waiting for the body.
func TestSASLLargeFrameBeforeAuthenticationClosesTheConnection(t *testing.T) {
	c := saslCluster(t, 1)
	conn, err := net.DialTimeout("tcp", c.addrs[0], 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(binary.BigEndian.AppendUint32(nil, 600<<10)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("after a 600 KiB frame size before authentication: read %d bytes, %v; want the connection closed", n, err)
	}
}
