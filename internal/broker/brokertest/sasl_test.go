package brokertest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	ksasl "github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/kafkaguard/kafkaguard/internal/broker/cluster"
	"github.com/kafkaguard/kafkaguard/internal/broker/sasl"
	"github.com/kafkaguard/kafkaguard/internal/broker/server"
	"github.com/kafkaguard/kafkaguard/internal/testkit"
)

// secured is a bundled cluster whose listeners speak TLS with a certificate of a throwaway CA
// and authenticate with every SASL mechanism; alice's password is "alice-secret".
type secured struct {
	c  *cluster.Cluster
	ca *testkit.CA
	// caFile is the CA certificate as a PEM file, for clients that read one.
	caFile string
}

func startSecured(t *testing.T, brokers int) *secured {
	t.Helper()
	ca := testkit.NewCA(t)
	sec, err := server.NewTLS(ca.Issue(t, "broker").TLS, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := cluster.Start(ctx, cluster.Config{
		Brokers: brokers, DataDir: t.TempDir(), SessionTimeout: time.Second, ReplicaFetchMaxWait: 50 * time.Millisecond,
		TLS:  sec,
		SASL: &server.SASL{Mechanisms: sasl.Mechanisms(), Users: map[string]string{"alice": "alice-secret"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return &secured{c: c, ca: ca, caFile: caFile}
}

// unsecuredToken is a token Kafka's default OAUTHBEARER validator accepts, naming alice.
func unsecuredToken() string { return sasl.UnsecuredToken("alice", time.Hour) }

// franz-go authenticates with each mechanism over TLS, produces and reads back; a wrong
// password is refused with SASL_AUTHENTICATION_FAILED.
func TestSASLOverTLSFranzGoAuthenticatesWithEachMechanism(t *testing.T) {
	t.Parallel()
	s := startSecured(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	mechs := []ksasl.Mechanism{
		plain.Auth{User: "alice", Pass: "alice-secret"}.AsMechanism(),
		scram.Auth{User: "alice", Pass: "alice-secret"}.AsSha256Mechanism(),
		scram.Auth{User: "alice", Pass: "alice-secret"}.AsSha512Mechanism(),
		oauth.Auth{Token: unsecuredToken()}.AsMechanism(),
	}
	for _, m := range mechs {
		t.Run(m.Name(), func(t *testing.T) {
			opts := []kgo.Opt{kgo.DialTLSConfig(s.ca.ClientTLS()), kgo.SASL(m)}
			topic := "franz-" + strings.ToLower(m.Name())
			cl := testkit.Client(t, s.c.Bootstrap(), append(opts, kgo.AllowAutoTopicCreation())...)
			for i := range 10 {
				if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, "v%d", i)}).FirstErr(); err != nil {
					t.Fatalf("produce: %v", err)
				}
			}
			got := testkit.ReadAll(ctx, t, s.c.Bootstrap(), topic, opts...)
			if len(got) != 10 || string(got[9].Value) != "v9" {
				t.Fatalf("read back %d records", len(got))
			}
		})
	}
	for _, m := range []ksasl.Mechanism{
		plain.Auth{User: "alice", Pass: "wrong"}.AsMechanism(),
		scram.Auth{User: "alice", Pass: "wrong"}.AsSha512Mechanism(),
		oauth.Auth{Token: sasl.UnsecuredToken("alice", -time.Minute)}.AsMechanism(),
	} {
		cl := testkit.Client(t, s.c.Bootstrap(), kgo.DialTLSConfig(s.ca.ClientTLS()), kgo.SASL(m))
		pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
		err := cl.Ping(pctx)
		pcancel()
		if !errors.Is(err, kerr.SaslAuthenticationFailed) {
			t.Errorf("%s with wrong credentials: %v, want SASL_AUTHENTICATION_FAILED", m.Name(), err)
		}
	}
}

// saramaScram is a sarama SCRAM client over franz-go's SCRAM implementation.
type saramaScram struct {
	mech func(scram.Auth) ksasl.Mechanism
	sess ksasl.Session
	done bool
	auth scram.Auth
}

func (s *saramaScram) Begin(user, pass, authzID string) error {
	s.auth = scram.Auth{User: user, Pass: pass, Zid: authzID}
	return nil
}

func (s *saramaScram) Step(challenge string) (string, error) {
	if s.sess == nil {
		sess, first, err := s.mech(s.auth).Authenticate(context.Background(), "")
		s.sess = sess
		return string(first), err
	}
	done, next, err := s.sess.Challenge([]byte(challenge))
	s.done = done
	return string(next), err
}

func (s *saramaScram) Done() bool { return s.done }

type saramaToken struct{}

func (saramaToken) Token() (*sarama.AccessToken, error) {
	return &sarama.AccessToken{Token: unsecuredToken()}, nil
}

// sarama authenticates with each mechanism over TLS (SaslHandshake v1), produces and reads
// back; a wrong password is refused.
func TestSASLOverTLSSaramaAuthenticatesWithEachMechanism(t *testing.T) {
	t.Parallel()
	s := startSecured(t, 1)
	config := func(mech sarama.SASLMechanism, pass string) *sarama.Config {
		cfg := saramaConfig(sarama.V3_6_0_0)
		cfg.Metadata.Retry.Max = 2
		cfg.Net.TLS.Enable = true
		cfg.Net.TLS.Config = s.ca.ClientTLS()
		cfg.Net.SASL.Enable = true
		cfg.Net.SASL.Version = sarama.SASLHandshakeV1
		cfg.Net.SASL.Mechanism = mech
		cfg.Net.SASL.User, cfg.Net.SASL.Password = "alice", pass
		switch mech {
		case sarama.SASLTypeSCRAMSHA256:
			cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient {
				return &saramaScram{mech: func(a scram.Auth) ksasl.Mechanism { return a.AsSha256Mechanism() }}
			}
		case sarama.SASLTypeSCRAMSHA512:
			cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient {
				return &saramaScram{mech: func(a scram.Auth) ksasl.Mechanism { return a.AsSha512Mechanism() }}
			}
		case sarama.SASLTypeOAuth:
			cfg.Net.SASL.TokenProvider = saramaToken{}
		}
		return cfg
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, mech := range []sarama.SASLMechanism{sarama.SASLTypePlaintext, sarama.SASLTypeSCRAMSHA256, sarama.SASLTypeSCRAMSHA512, sarama.SASLTypeOAuth} {
		t.Run(string(mech), func(t *testing.T) {
			topic := "sarama-" + strings.ToLower(string(mech))
			prod, err := sarama.NewSyncProducer(s.c.Bootstrap(), config(mech, "alice-secret"))
			if err != nil {
				t.Fatalf("producer: %v", err)
			}
			defer prod.Close()
			for i := range 10 {
				if _, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(fmt.Sprint(i))}); err != nil {
					t.Fatalf("produce: %v", err)
				}
			}
			franz := []kgo.Opt{kgo.DialTLSConfig(s.ca.ClientTLS()), kgo.SASL(plain.Auth{User: "alice", Pass: "alice-secret"}.AsMechanism())}
			if got := testkit.ReadAll(ctx, t, s.c.Bootstrap(), topic, franz...); len(got) != 10 {
				t.Fatalf("read back %d records, want 10", len(got))
			}
		})
	}
	for _, mech := range []sarama.SASLMechanism{sarama.SASLTypePlaintext, sarama.SASLTypeSCRAMSHA512} {
		_, err := sarama.NewClient(s.c.Bootstrap(), config(mech, "wrong"))
		if !errors.Is(err, sarama.ErrSASLAuthenticationFailed) {
			t.Errorf("sarama %s with a wrong password: %v, want SASL_AUTHENTICATION_FAILED", mech, err)
		}
	}
}

// Kafka's Java console producer, configured by a client properties file (SASL_SSL,
// SCRAM-SHA-512, a PEM truststore), writes to the bundled broker; kafka-configs.sh creates a
// SCRAM user who can then write too; with a wrong password the producer fails authentication
// and writes nothing.
func TestSASLOverTLSJavaConsoleProducerWithAClientPropertiesFile(t *testing.T) {
	t.Parallel()
	tool := javaTools(t)
	s := startSecured(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	franz := []kgo.Opt{kgo.DialTLSConfig(s.ca.ClientTLS()), kgo.SASL(plain.Auth{User: "alice", Pass: "alice-secret"}.AsMechanism())}
	adm := kadm.NewClient(testkit.Client(t, s.c.Bootstrap(), franz...))
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "java-sasl"); err != nil {
		t.Fatal(err)
	}
	props := func(user, pass string) string {
		f := filepath.Join(t.TempDir(), "client.properties")
		text := "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n" +
			"sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"" + user + "\" password=\"" + pass + "\";\n" +
			"ssl.truststore.type=PEM\nssl.truststore.location=" + s.caFile + "\n"
		if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	run := func(user, pass string, lines int) ([]byte, error) {
		prod := tool(ctx, "org.apache.kafka.tools.ConsoleProducer", "--bootstrap-server", strings.Join(s.c.Bootstrap(), ","),
			"--topic", "java-sasl", "--command-config", props(user, pass), "--command-property", "acks=all",
			"--command-property", "max.block.ms=10000")
		var in strings.Builder
		for i := range lines {
			fmt.Fprintf(&in, "line-%d\n", i)
		}
		prod.Stdin = strings.NewReader(in.String())
		return prod.CombinedOutput()
	}
	if out, err := run("alice", "alice-secret", 20); err != nil {
		t.Fatalf("console producer: %v\n%s", err, out)
	}
	if got := testkit.EndOffsets(ctx, t, s.c.Bootstrap(), "java-sasl", franz...)[0]; got != 20 {
		t.Fatalf("log end offset after the console producer: %d, want 20", got)
	}
	// kafka-configs.sh creates a SCRAM user (AlterUserScramCredentials), who then produces.
	cfgCmd := tool(ctx, "org.apache.kafka.tools.ConfigCommand", "--bootstrap-server", strings.Join(s.c.Bootstrap(), ","),
		"--command-config", props("alice", "alice-secret"), "--alter", "--entity-type", "users", "--entity-name", "dave",
		"--add-config", "SCRAM-SHA-512=[iterations=8192,password=dave-secret]")
	if out, err := cfgCmd.CombinedOutput(); err != nil {
		t.Fatalf("kafka-configs --alter: %v\n%s", err, lastLines(string(out), 30))
	}
	if out, err := run("dave", "dave-secret", 5); err != nil {
		t.Fatalf("console producer as a user kafka-configs created: %v\n%s", err, lastLines(string(out), 30))
	}
	if got := testkit.EndOffsets(ctx, t, s.c.Bootstrap(), "java-sasl", franz...)[0]; got != 25 {
		t.Fatalf("log end offset after dave's producer: %d, want 25", got)
	}
	out, _ := run("alice", "wrong", 1)
	if !strings.Contains(string(out), "SaslAuthenticationException") {
		t.Fatalf("console producer with a wrong password did not fail authentication:\n%s", lastLines(string(out), 30))
	}
	if got := testkit.EndOffsets(ctx, t, s.c.Bootstrap(), "java-sasl", franz...)[0]; got != 25 {
		t.Fatalf("log end offset after the refused producer: %d, want 25", got)
	}
}

// Kafka's Java console producer and consumer authenticate over TLS with each of the other
// mechanisms the bundled broker offers (SCRAM-SHA-512 has its own test above): PLAIN,
// SCRAM-SHA-256 (a user the broker derives credentials for from its users), and OAUTHBEARER
// with an unsecured token, as Kafka's default login callback makes one.
func TestSASLOverTLSJavaConsoleClientsWithEachMechanism(t *testing.T) {
	t.Parallel()
	tool := javaTools(t)
	s := startSecured(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	franz := []kgo.Opt{kgo.DialTLSConfig(s.ca.ClientTLS()), kgo.SASL(plain.Auth{User: "alice", Pass: "alice-secret"}.AsMechanism())}
	for _, m := range []struct{ mechanism, jaas string }{
		{"PLAIN", `org.apache.kafka.common.security.plain.PlainLoginModule required username="alice" password="alice-secret";`},
		{"SCRAM-SHA-256", `org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="alice-secret";`},
		{"OAUTHBEARER", `org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub="alice";`},
	} {
		t.Run(m.mechanism, func(t *testing.T) {
			topic := "java-" + strings.ToLower(m.mechanism)
			if _, err := kadm.NewClient(testkit.Client(t, s.c.Bootstrap(), franz...)).CreateTopic(ctx, 1, 1, nil, topic); err != nil {
				t.Fatal(err)
			}
			props := filepath.Join(t.TempDir(), "client.properties")
			text := "security.protocol=SASL_SSL\nsasl.mechanism=" + m.mechanism + "\nsasl.jaas.config=" + m.jaas + "\n" +
				"ssl.truststore.type=PEM\nssl.truststore.location=" + s.caFile + "\n"
			if err := os.WriteFile(props, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			prod := tool(ctx, "org.apache.kafka.tools.ConsoleProducer", "--bootstrap-server", strings.Join(s.c.Bootstrap(), ","),
				"--topic", topic, "--command-config", props, "--command-property", "acks=all", "--command-property", "max.block.ms=10000")
			prod.Stdin = strings.NewReader("one\ntwo\nthree\n")
			if out, err := prod.CombinedOutput(); err != nil {
				t.Fatalf("console producer with %s: %v\n%s", m.mechanism, err, lastLines(string(out), 30))
			}
			if got := testkit.EndOffsets(ctx, t, s.c.Bootstrap(), topic, franz...)[0]; got != 3 {
				t.Fatalf("log end offset after the %s producer: %d, want 3", m.mechanism, got)
			}
			cons := tool(ctx, "org.apache.kafka.tools.consumer.ConsoleConsumer", "--bootstrap-server", strings.Join(s.c.Bootstrap(), ","),
				"--topic", topic, "--from-beginning", "--max-messages", "3", "--timeout-ms", "30000", "--command-config", props)
			out, err := cons.Output()
			if err != nil {
				t.Fatalf("console consumer with %s: %v\n%s", m.mechanism, err, out)
			}
			if got := strings.Fields(string(out)); strings.Join(got, ",") != "one,two,three" {
				t.Fatalf("console consumer with %s read %q, want one, two, three", m.mechanism, got)
			}
		})
	}
}
