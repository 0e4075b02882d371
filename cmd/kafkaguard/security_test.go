package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/kafkaguard/kafkaguard/clientsec"
)

// securedCommands are the commands that talk to a cluster, with the
// arguments that get them past their own checks to the security flags.
var securedCommands = map[string][]string{
	"audit":     {"audit", "--bootstrap", "127.0.0.1:1", "--timeout", "1s"},
	"verify":    {"verify", "--bootstrap", "127.0.0.1:1", "--fault", "none"},
	"retry-job": {"retry-job", "--bootstrap", "127.0.0.1:1", "--topic", "t", "--action", "exec:true"},
}

func writeTemp(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestEveryClusterCommandHasTheSecurityFlags(t *testing.T) {
	root := newRootCmd()
	for name := range securedCommands {
		cmd, _, err := root.Find([]string{name})
		if err != nil {
			t.Fatal(err)
		}
		for _, flag := range []string{"command-config", "security-protocol", "sasl-mechanism", "sasl-username",
			"sasl-password-file", "sasl-oauth-token-file", "tls-ca", "tls-cert", "tls-key", "tls-server-name"} {
			if cmd.Flags().Lookup(flag) == nil {
				t.Errorf("%s has no --%s", name, flag)
			}
		}
		if !strings.Contains(cmd.Long, "--command-config FILE") {
			t.Errorf("%s's help does not explain the security flags", name)
		}
	}
}

func TestBadSecurityFlagsAreRefusedNamingTheFlag(t *testing.T) {
	props := writeTemp(t, "client.properties", "security.protocol=SSL\nssl.truststore.password=changeit\n")
	empty := writeTemp(t, "empty", "\n")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--security-protocol", "SASL_TLS"}, "--security-protocol: "},
		{[]string{"--sasl-mechanism", "GSSAPI"}, "--sasl-mechanism: "},
		{[]string{"--tls-ca", "/nonexistent/ca.pem"}, "--tls-ca: "},
		{[]string{"--tls-cert", "/nonexistent/c.pem"}, "--tls-cert and --tls-key go together"},
		{[]string{"--tls-cert", "/nonexistent/c.pem", "--tls-key", "/nonexistent/k.pem"}, "--tls-cert, --tls-key: "},
		{[]string{"--sasl-mechanism", "PLAIN", "--sasl-username", "u", "--sasl-password-file", "/nonexistent/pw"}, "--sasl-password-file: "},
		{[]string{"--sasl-mechanism", "PLAIN", "--sasl-username", "u", "--sasl-password-file", empty}, "--sasl-password-file: " + empty + " is empty"},
		{[]string{"--sasl-mechanism", "OAUTHBEARER", "--sasl-oauth-token-file", "/nonexistent/tok"}, "--sasl-oauth-token-file: "},
		{[]string{"--sasl-mechanism", "SCRAM-SHA-512", "--sasl-username", "u"}, "needs a username and a password"},
		{[]string{"--security-protocol", "PLAINTEXT", "--tls-server-name", "x"}, "does not use TLS"},
		{[]string{"--command-config", props}, "--command-config: " + props + ": ssl.truststore.password: key not supported"},
		{[]string{"--command-config", "/nonexistent/client.properties"}, "--command-config: "},
	} {
		for name, base := range securedCommands {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append(append([]string{}, base...), tc.args...), &stdout, &stderr)
			if code != 2 || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("%s %q: exit code %d, stderr %q; want 2 and %q", name, tc.args, code, stderr.String(), tc.want)
			}
		}
	}
	code, _, stderr := runCLI(t, "verify", "--tls-ca", "x.pem")
	if code != 2 || !strings.Contains(stderr, "need --bootstrap") {
		t.Errorf("verify --tls-ca without --bootstrap: exit code %d, stderr %q", code, stderr)
	}
}

// TestAuditConnectsWithTheSecurityFlags: the flags reach the client. A
// plaintext cluster passes without them and cannot be read with
// --security-protocol SSL, the TLS handshake failing.
func TestAuditConnectsWithTheSecurityFlags(t *testing.T) {
	c := auditCluster(t)
	boot := strings.Join(c.Bootstrap(), ",")
	var stdout, stderr bytes.Buffer
	if code := runAudit(context.Background(), []string{"--bootstrap", boot, "--topic", "safe", "--security-protocol", "PLAINTEXT"}, &stdout, &stderr); code != 0 {
		t.Fatalf("PLAINTEXT: exit code %d, stderr %q", code, stderr.String())
	}
	stdout.Reset()
	stderr.Reset()
	code := runAudit(context.Background(), []string{"--bootstrap", boot, "--topic", "safe", "--security-protocol", "SSL", "--timeout", "2s"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "reading the cluster") {
		t.Fatalf("SSL against a plaintext listener: exit code %d, stderr %q; want 1", code, stderr.String())
	}
}

func TestSecretsComeFromFilesOrTheEnvironment(t *testing.T) {
	pw := writeTemp(t, "pw", "from-file\n")
	props := writeTemp(t, "client.properties", "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-256\n"+
		`sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="props-user" password="from-props";`+"\n")
	settings := func(args ...string) clientsec.Settings {
		t.Helper()
		fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
		sec := addSecurityFlags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		s, err := sec.settings()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if s := settings("--command-config", props); s.Username != "props-user" || s.Password != "from-props" || s.Protocol != clientsec.SASLPlaintext {
		t.Errorf("properties: %+v", s)
	}
	t.Setenv(envSASLPassword, "from-env")
	if s := settings("--command-config", props); s.Password != "from-env" {
		t.Errorf("$%s does not override the file's password: %q", envSASLPassword, s.Password)
	}
	if s := settings("--command-config", props, "--sasl-username", "flag-user", "--sasl-password-file", pw); s.Username != "flag-user" || s.Password != "from-file" {
		t.Errorf("flags do not override the file: %+v", s)
	}
	if s := settings("--sasl-mechanism", "PLAIN", "--sasl-username", "u"); s.Password != "from-env" || s.Protocol != clientsec.SASLSSL {
		t.Errorf("flags and $%s: %+v", envSASLPassword, s)
	}
	t.Setenv(envOAuthToken, "env-token")
	s := settings("--sasl-mechanism", "OAUTHBEARER")
	if tok, err := s.Token(context.Background()); tok != "env-token" || err != nil {
		t.Errorf("$%s: token %q, %v", envOAuthToken, tok, err)
	}
}
