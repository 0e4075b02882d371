package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/clientsec"
	"github.com/kafkaguard/kafkaguard/produce"
	"github.com/kafkaguard/kafkaguard/retry"
)

// Environment of the real-Kafka tests: the SASL_SSL listeners of a cluster
// started by integration/kafka/kafka.sh and its client properties file
// ("kafka.sh sasl-bootstrap", "kafka.sh client-config").
const (
	envRealKafka     = "KAFKAGUARD_REAL_KAFKA"
	envSASLBootstrap = "KAFKAGUARD_SASL_SSL_BOOTSTRAP"
	envClientConfig  = "KAFKAGUARD_CLIENT_CONFIG"
)

// realSASLSSL returns the SASL_SSL bootstrap, the properties file and an
// admin client connected with it, skipping unless real Kafka runs.
func realSASLSSL(t *testing.T) (boot, config string, secured []kgo.Opt, adm *kadm.Client) {
	t.Helper()
	if os.Getenv(envRealKafka) != "1" {
		t.Skipf("set %s=1 with %s and %s from integration/kafka/kafka.sh (sasl-bootstrap, client-config) to run against real Apache Kafka's SASL_SSL listener",
			envRealKafka, envSASLBootstrap, envClientConfig)
	}
	boot, config = os.Getenv(envSASLBootstrap), os.Getenv(envClientConfig)
	if boot == "" || config == "" {
		t.Fatalf("%s=1 but %s or %s is not set", envRealKafka, envSASLBootstrap, envClientConfig)
	}
	s, err := clientsec.LoadProperties(config)
	if err != nil {
		t.Fatal(err)
	}
	if secured, err = s.KgoOpts(); err != nil {
		t.Fatal(err)
	}
	secured = append(secured, kgo.SeedBrokers(strings.Split(boot, ",")...))
	cl, err := kgo.NewClient(secured...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return boot, config, secured, kadm.NewClient(cl)
}

// createTopics creates the topics, replicated over up to 3 brokers.
func createTopics(ctx context.Context, t *testing.T, adm *kadm.Client, topics ...string) {
	t.Helper()
	brokers, err := adm.ListBrokers(ctx)
	if err != nil {
		t.Fatalf("listing brokers over SASL_SSL: %v", err)
	}
	rf := min(3, len(brokers))
	isr := strconv.Itoa(max(1, rf-1))
	resp, err := adm.CreateTopics(ctx, 1, int16(rf), map[string]*string{"min.insync.replicas": &isr}, topics...)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	// Real Kafka's brokers learn of a new topic a moment after it is
	// created; a command started before would find no partitions.
	for {
		ends, err := adm.ListEndOffsets(ctx, topics...)
		if err == nil && ends.Error() == nil {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("topics %v not ready: %v", topics, errors.Join(err, ends.Error()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func uniqueTopic(prefix string) string {
	return prefix + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
}

func TestRealKafkaSASLSSLAudit(t *testing.T) {
	t.Parallel()
	boot, config, _, adm := realSASLSSL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	topic := uniqueTopic("secured-audit")
	createTopics(ctx, t, adm, topic)

	var stdout, stderr bytes.Buffer
	code := runAudit(ctx, []string{"--bootstrap", boot, "--command-config", config, "--topic", topic, "--json"}, &stdout, &stderr)
	var rep struct{ Checks []produce.Check }
	if (code != 0 && code != 1) || json.Unmarshal(stdout.Bytes(), &rep) != nil {
		t.Fatalf("audit over SASL_SSL: exit code %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	// A topic that exists and could be read gets its rules checked; one
	// that could not be read gets a failed "topic exists" check instead.
	found := false
	for _, ch := range rep.Checks {
		if ch.Resource == "topic "+topic {
			found = found || ch.Rule != produce.RuleTopicExists
			if ch.Rule == produce.RuleTopicExists {
				found = false
				break
			}
		}
	}
	if !found {
		t.Fatalf("audit over SASL_SSL did not find topic %s: %s", topic, stdout.String())
	}
	t.Logf("audit over SASL_SSL, exit code %d (the broker rules depend on the cluster's size)", code)

	// The same listener refuses a plaintext client and a wrong password.
	wrong := writeTemp(t, "wrong.properties", regexp.MustCompile(`password="[^"]*"`).
		ReplaceAllString(string(must(os.ReadFile(config))), `password="wrong"`))
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no security", nil, "reading the cluster"},
		{"wrong password", []string{"--command-config", wrong}, "SASL_AUTHENTICATION_FAILED"},
	} {
		stdout.Reset()
		stderr.Reset()
		args := append([]string{"--bootstrap", boot, "--topic", topic, "--timeout", "10s"}, tc.args...)
		if code := runAudit(ctx, args, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%s: exit code %d, stderr %q; want 1 and %q", tc.name, code, stderr.String(), tc.want)
		}
	}
}

func TestRealKafkaSASLSSLRetryJobRepublishes(t *testing.T) {
	t.Parallel()
	boot, config, secured, adm := realSASLSSL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	topic := uniqueTopic("secured-retry")
	createTopics(ctx, t, adm, topic, topic+retry.RetrySuffix, topic+retry.DeadLetterSuffix)

	cl, err := kgo.NewClient(secured...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	p, err := retry.NewParker(cl)
	if err != nil {
		t.Fatal(err)
	}
	r := &kgo.Record{Topic: topic, Partition: 0, Offset: 3, Key: []byte("k"), Value: []byte("over-tls")}
	if err := p.Park(ctx, r, errors.New("consumer failed")); err != nil {
		t.Fatal(err)
	}
	// On a fresh cluster the group coordinator (__consumer_offsets) comes
	// up on first use, and retry-job gives up on COORDINATOR_NOT_AVAILABLE
	// at start; wait for it as an operator would.
	for {
		_, err := adm.FetchOffsets(ctx, retry.DefaultGroup(topic+retry.RetrySuffix))
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("group coordinator not available: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, stop := startRetryJob(t, "--bootstrap", boot, "--command-config", config, "--topic", topic,
		"--backoff-initial", "10ms", "--backoff-max", "50ms", "--log-level", "info")
	cons, err := kgo.NewClient(append(secured, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	fs := cons.PollFetches(ctx)
	if ctx.Err() != nil {
		t.Fatalf("retry-job republished nothing over SASL_SSL: %v", fs.Errors())
	}
	got := fs.Records()
	if len(got) != 1 || string(got[0].Value) != "over-tls" {
		t.Fatalf("republished %v", got)
	}
	if code := stop(); code != 0 {
		t.Errorf("retry-job exit code %d", code)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestRealKafkaSASLSSLVerifyBothClients runs verify over SASL_SSL with each
// producer family: franz-go through Config.ClientOpts, sarama through its
// Net.TLS and Net.SASL (SCRAM by franz-go's implementation), and verify's
// own admin and read-back clients.
func TestRealKafkaSASLSSLVerifyBothClients(t *testing.T) {
	t.Parallel()
	boot, config, _, adm := realSASLSSL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	brokers, err := adm.ListBrokers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(brokers) < 3 {
		t.Skipf("verify's topics need 3 brokers, the cluster at %s has %d", boot, len(brokers))
	}
	for _, client := range []string{"franz-go", "sarama"} {
		var stdout, stderr bytes.Buffer
		code := runVerify(ctx, []string{"--bootstrap", boot, "--command-config", config, "--client", client,
			"--preset", "NoLoss", "--fault", "none", "--records", "200", "--keys", "2"}, &stdout, &stderr)
		if code != 0 {
			t.Errorf("verify --client %s over SASL_SSL: exit code %d\nstdout:\n%s\nstderr:\n%s", client, code, stdout.String(), stderr.String())
		}
	}
}
