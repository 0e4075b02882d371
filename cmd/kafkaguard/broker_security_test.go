package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/kafkaguard/kafkaguard/internal/testkit"
)

// writeSecret writes text to a new file of the test and returns its path.
func writeSecret(t *testing.T, name, text string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// "kafkaguard broker" with --tls-cert/--tls-key and SASL users from --sasl-user and
// --sasl-users-file keeps its ready line, serves clients that authenticate over TLS (two
// brokers: the follower authenticates to the leader too), and refuses a wrong password and a
// plaintext client.
func TestBrokerWithTLSAndSASLServesOnlyAuthenticatedTLSClients(t *testing.T) {
	t.Parallel()
	ca := testkit.NewCA(t)
	certFile, keyFile := ca.Issue(t, "broker").WriteFiles(t)
	port := freePorts(t, 2)
	p := startBroker(t, nil, "--brokers", "2", "--port", strconv.Itoa(port), "--log-level", "warn",
		"--min-insync-replicas", "2",
		"--tls-cert", certFile, "--tls-key", keyFile,
		"--sasl-user", "alice:"+writeSecret(t, "alice.password", "alice-secret\n"),
		"--sasl-users-file", writeSecret(t, "users", "# users\nbob:bob:secret\n\n"),
		"--sasl-mechanisms", "PLAIN,SCRAM-SHA-512")
	if want := "ready bootstrap=" + addrs(port, 2); p.ready != want {
		t.Fatalf("ready line %q, want %q", p.ready, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, auth := range []kgo.Opt{
		kgo.SASL(scram.Auth{User: "alice", Pass: "alice-secret"}.AsSha512Mechanism()),
		kgo.SASL(plain.Auth{User: "bob", Pass: "bob:secret"}.AsMechanism()),
	} {
		opts := []kgo.Opt{kgo.DialTLSConfig(ca.ClientTLS()), auth}
		topic := fmt.Sprintf("secured-%d", time.Now().UnixNano())
		cl := testkit.Client(t, p.bootstrap(), append(opts, kgo.AllowAutoTopicCreation(), kgo.RequiredAcks(kgo.AllISRAcks()))...)
		for i := range 5 {
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
				t.Fatalf("produce: %v\n%s", err, p.stderr())
			}
		}
		if got := testkit.ReadAll(ctx, t, p.bootstrap(), topic, opts...); len(got) != 5 {
			t.Fatalf("read back %d records, want 5", len(got))
		}
	}
	ping := func(opts ...kgo.Opt) error {
		cl := testkit.Client(t, p.bootstrap(), opts...)
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		defer pcancel()
		return cl.Ping(pctx)
	}
	if err := ping(kgo.DialTLSConfig(ca.ClientTLS()), kgo.SASL(scram.Auth{User: "alice", Pass: "wrong"}.AsSha512Mechanism())); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Errorf("a wrong password: %v, want SASL_AUTHENTICATION_FAILED", err)
	}
	if err := ping(kgo.DialTLSConfig(ca.ClientTLS()), kgo.SASL(scram.Auth{User: "alice", Pass: "alice-secret"}.AsSha256Mechanism())); !errors.Is(err, kerr.UnsupportedSaslMechanism) {
		t.Errorf("a mechanism not in --sasl-mechanisms: %v, want UNSUPPORTED_SASL_MECHANISM", err)
	}
	if err := ping(kgo.SASL(plain.Auth{User: "bob", Pass: "bob:secret"}.AsMechanism())); err == nil {
		t.Error("a plaintext client was served")
	}
	if code := p.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d, want 0:\n%s", code, p.stderr())
	}
}

func TestBrokerRefusesBadSecurityFlags(t *testing.T) {
	t.Parallel()
	ca := testkit.NewCA(t)
	certFile, _ := ca.Issue(t, "broker").WriteFiles(t)
	pass := writeSecret(t, "p", "secret")
	tests := []struct {
		name string
		args []string
		code int
		says string
	}{
		{"cert without key", []string{"--tls-cert", certFile}, 2, "--tls-cert and --tls-key go together"},
		{"client CA without cert", []string{"--tls-client-ca", certFile}, 2, "--tls-client-ca needs --tls-cert"},
		{"password on the command line", []string{"--sasl-user", "alice"}, 2, "want USER:PASSWORD-FILE"},
		{"unknown mechanism", []string{"--sasl-user", "alice:" + pass, "--sasl-mechanisms", "GSSAPI"}, 2, `"GSSAPI" is not one of`},
		{"mechanisms without users", []string{"--sasl-mechanisms", "PLAIN"}, 2, "needs users"},
		{"missing password file", []string{"--sasl-user", "alice:/nonexistent/password"}, 1, "--sasl-user alice"},
		{"bad users file", []string{"--sasl-users-file", writeSecret(t, "u", "alice\n")}, 1, "line 1: want USER:PASSWORD"},
		{"key that is not a key", []string{"--tls-cert", certFile, "--tls-key", certFile}, 1, "TLS certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := runBroker(context.Background(), append([]string{"--port", "0"}, tt.args...), &out, &errb)
			if code != tt.code || !strings.Contains(errb.String(), tt.says) {
				t.Fatalf("runBroker(%q) = %d, stderr %q; want %d mentioning %q", tt.args, code, errb.String(), tt.code, tt.says)
			}
			if out.Len() != 0 {
				t.Fatalf("stdout %q, want nothing", out.String())
			}
		})
	}
}

// The no-loss audit passes against "kafkaguard broker" with TLS and SASL when it is given a
// Kafka client properties file (SASL_SSL, SCRAM-SHA-512, a PEM truststore), and cannot read
// the same cluster without it.
func TestAuditPassesAgainstASecuredBundledBrokerWithACommandConfig(t *testing.T) {
	t.Parallel()
	ca := testkit.NewCA(t)
	certFile, keyFile := ca.Issue(t, "broker").WriteFiles(t)
	port := freePorts(t, 3)
	p := startBroker(t, nil, "--brokers", "3", "--port", strconv.Itoa(port), "--log-level", "warn",
		"--min-insync-replicas", "2", "--tls-cert", certFile, "--tls-key", keyFile,
		"--sasl-user", "alice:"+writeSecret(t, "alice.password", "alice-secret\n"))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	opts := []kgo.Opt{kgo.DialTLSConfig(ca.ClientTLS()), kgo.SASL(scram.Auth{User: "alice", Pass: "alice-secret"}.AsSha512Mechanism())}
	adm := kadm.NewClient(testkit.Client(t, p.bootstrap(), opts...))
	resp, err := adm.CreateTopic(ctx, 3, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("2"),
		"unclean.leader.election.enable": kadm.StringPtr("false")}, "safe")
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic: %v\n%s", err, p.stderr())
	}
	caFile := writeSecret(t, "ca.pem", string(ca.PEM))
	props := writeSecret(t, "client.properties", "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"+
		`sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="alice-secret";`+"\n"+
		"ssl.truststore.type=PEM\nssl.truststore.location="+caFile+"\n")
	boot := strings.Join(p.bootstrap(), ",")
	var stdout, stderr bytes.Buffer
	if code := runAudit(ctx, []string{"--bootstrap", boot, "--topic", "safe", "--command-config", props}, &stdout, &stderr); code != 0 {
		t.Fatalf("audit with --command-config: exit code %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "checks passed") {
		t.Fatalf("audit output lacks its verdict:\n%s", stdout.String())
	}
	stdout.Reset()
	stderr.Reset()
	if code := runAudit(ctx, []string{"--bootstrap", boot, "--topic", "safe", "--timeout", "3s"}, &stdout, &stderr); code == 0 {
		t.Fatalf("audit without the client properties passed against a TLS+SASL cluster:\n%s", stdout.String())
	}
	if code := p.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d, want 0:\n%s", code, p.stderr())
	}
}
