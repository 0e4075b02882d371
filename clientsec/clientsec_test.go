package clientsec

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
)

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestParsePropertiesJavaSyntax(t *testing.T) {
	text := "# comment\n! another\n  a = 1\nb:2\nc 3\nd=x\\\n    y\\\\\ne=tab\\there \\u0041\nf\\=g=h\nempty=\n"
	got, err := parseProperties(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "1", "b": "2", "c": "3", "d": `xy\`, "e": "tab\there A", "f=g": "h", "empty": ""}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestParseJAAS(t *testing.T) {
	mod, opts, err := parseJAAS(`org.apache.kafka.common.security.scram.ScramLoginModule required
		/* block */ username="al ice" // line comment
		password='p\'a"ss;=word' tokenauth=false;`)
	if err != nil {
		t.Fatal(err)
	}
	if mod != scramModule || opts["username"] != "al ice" || opts["password"] != `p'a"ss;=word` || opts["tokenauth"] != "false" {
		t.Fatalf("got %s %q", mod, opts)
	}
	for text, want := range map[string]string{
		``:                                      "empty",
		`M required username="a"`:               "must end with ';'",
		`M mandatory;`:                          "control flag",
		`M required username;`:                  "needs '='",
		`M required username="a" username="b";`: "given twice",
		`M required; N required;`:               "exactly one login module",
		`M required password="unterminated;`:    "unterminated",
		`"M" required;`:                         "login module class",
		`M required username=;`:                 "needs a value",
	} {
		if _, _, err := parseJAAS(text); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseJAAS(%q) = %v, want an error with %q", text, err, want)
		}
	}
}

func TestLoadPropertiesSASLSSL(t *testing.T) {
	p := newTestPKI(t)
	path := writeFile(t, "client.properties", fmt.Sprintf(`
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \
    username="alice" \
    password="s3cr=t";
ssl.truststore.type=PEM
ssl.truststore.location=%s
ssl.keystore.type=PEM
ssl.keystore.location=%s
ssl.endpoint.identification.algorithm=
client.id=ignored
acks=all
`, p.caFile, p.client))
	s, err := LoadProperties(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.Protocol != SASLSSL || s.Mechanism != ScramSHA512 || s.Username != "alice" || s.Password != "s3cr=t" ||
		s.RootCAs == nil || s.Certificate == nil || !s.SkipHostnameCheck {
		t.Fatalf("settings %+v", s)
	}
	if _, err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

func TestLoadPropertiesRefusesByKey(t *testing.T) {
	p := newTestPKI(t)
	encKey := writeFile(t, "enc.pem", "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n")
	jaas := func(mod, opts string) string { return "sasl.jaas.config=" + mod + " required " + opts + ";\n" }
	for _, tc := range []struct{ text, key, msg string }{
		{"ssl.truststore.password=x\n", "ssl.truststore.password", "not supported"},
		{"sasl.login.refresh.window.factor=0.8\n", "sasl.login.refresh.window.factor", "not supported"},
		{"security.providers=x\n", "security.providers", "not supported"},
		{"security.protocol=SASL_TLS\n", "security.protocol", "SASL_TLS"},
		{"sasl.mechanism=GSSAPI\n", "sasl.mechanism", "GSSAPI"},
		{"ssl.truststore.location=" + p.caFile + "\n", "ssl.truststore.type", "JKS"},
		{"ssl.truststore.type=JKS\nssl.truststore.location=x.jks\n", "ssl.truststore.type", "only PEM"},
		{"ssl.truststore.type=PEM\nssl.truststore.location=/nonexistent.pem\n", "ssl.truststore.location", "no such file"},
		{"ssl.keystore.type=PEM\nssl.keystore.location=" + encKey + "\n", "ssl.keystore.location", "encrypted"},
		{"ssl.key.password=pw\n", "ssl.key.password", "encrypted private keys"},
		{"ssl.endpoint.identification.algorithm=ldap\n", "ssl.endpoint.identification.algorithm", "ldap"},
		{"sasl.mechanism=PLAIN\n" + jaas(scramModule, `username="a" password="b"`), "sasl.jaas.config", "does not fit"},
		{jaas("com.sun.security.auth.module.Krb5LoginModule", "useKeyTab=true"), "sasl.jaas.config", "Krb5LoginModule"},
		{jaas(plainModule, `username="a" password="b" serviceName="x"`), "sasl.jaas.config", "serviceName"},
		{jaas(oauthModule, `unsecuredLoginExtension_x="y" unsecuredLoginStringClaim_sub="a"`), "sasl.jaas.config", "unsecuredLoginExtension_x"},
		{jaas(oauthModule, `unsecuredLoginStringClaim_aud="x"`), "sasl.jaas.config", "unsecuredLoginStringClaim_sub"},
		{"sasl.oauthbearer.token.endpoint.url=https://idp/token\nsasl.login.callback.handler.class=" + oauthHandler + "\n", "sasl.oauthbearer.token.endpoint.url", "only file:"},
		{"sasl.login.callback.handler.class=com.example.Handler\n", "sasl.login.callback.handler.class", "com.example.Handler"},
	} {
		path := writeFile(t, "client.properties", tc.text)
		_, err := LoadProperties(path)
		var pe *PropertyError
		if !errors.As(err, &pe) || pe.Key != tc.key || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q: got %v, want a PropertyError for %s saying %q", tc.text, err, tc.key, tc.msg)
		}
	}
}

func TestLoadPropertiesOAuthTokenFile(t *testing.T) {
	tok := writeFile(t, "token", "  tok-1\n")
	path := writeFile(t, "client.properties", "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=OAUTHBEARER\n"+
		"sasl.login.callback.handler.class="+oauthHandler+"\nsasl.oauthbearer.token.endpoint.url=file://"+tok+"\n"+
		"sasl.jaas.config="+oauthModule+" required ;\n")
	s, err := LoadProperties(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Token(context.Background()); got != "tok-1" || err != nil {
		t.Fatalf("token %q, %v", got, err)
	}
	// The file is read at every authentication: a rotated token is used.
	if err := os.WriteFile(tok, []byte("tok-2"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Token(context.Background()); got != "tok-2" {
		t.Fatalf("after rotation: token %q, want tok-2", got)
	}
}

func TestUnsecuredToken(t *testing.T) {
	path := writeFile(t, "client.properties", "sasl.mechanism=OAUTHBEARER\nsasl.jaas.config="+oauthModule+
		` required unsecuredLoginStringClaim_sub="alice" unsecuredLoginNumberClaim_n="2" unsecuredLoginListClaim_scope=",a,b" unsecuredLoginLifetimeSeconds="60";`+"\n")
	s, err := LoadProperties(path)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[2] != "" {
		t.Fatalf("token %q is not an unsigned JWS", tok)
	}
	var header, claims map[string]any
	for i, v := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil || json.Unmarshal(b, v) != nil {
			t.Fatalf("part %d of %q: %v", i, tok, err)
		}
	}
	if header["alg"] != "none" || claims["sub"] != "alice" || claims["n"] != 2.0 ||
		!reflect.DeepEqual(claims["scope"], []any{"a", "b"}) || claims["exp"].(float64)-claims["iat"].(float64) != 60 {
		t.Fatalf("header %v claims %v", header, claims)
	}
}

func TestCheck(t *testing.T) {
	pool, tok := LoadCAOrFatal(t), StaticToken("t")
	for _, tc := range []struct {
		in   Settings
		want Protocol
		err  string
	}{
		{Settings{}, Plaintext, ""},
		{Settings{RootCAs: pool}, SSL, ""},
		{Settings{Mechanism: Plain, Username: "u", Password: "p"}, SASLSSL, ""},
		{Settings{Protocol: SASLPlaintext, Mechanism: OAuthBearer, Token: tok}, SASLPlaintext, ""},
		{Settings{Protocol: Plaintext, RootCAs: pool}, "", "does not use TLS"},
		{Settings{Protocol: SSL, Mechanism: Plain}, "", "does not use SASL"},
		{Settings{Protocol: SASLSSL}, "", "GSSAPI"},
		{Settings{Mechanism: ScramSHA256, Username: "u"}, "", "needs a username and a password"},
		{Settings{Mechanism: OAuthBearer}, "", "needs a token"},
		{Settings{Mechanism: OAuthBearer, Token: tok, Username: "u"}, "", "not a username"},
		{Settings{Mechanism: Plain, Username: "u", Password: "p", Token: tok}, "", "not a token"},
		{Settings{Protocol: "TLS"}, "", "TLS"},
	} {
		got, err := tc.in.Check()
		switch {
		case tc.err == "" && (err != nil || got.Protocol != tc.want):
			t.Errorf("%+v: got %s, %v; want %s", tc.in, got.Protocol, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%+v: got %v, want an error with %q", tc.in, err, tc.err)
		}
	}
}

func LoadCAOrFatal(t *testing.T) *x509.CertPool {
	t.Helper()
	pool, err := LoadCA(newTestPKI(t).caFile)
	if err != nil {
		t.Fatal(err)
	}
	return pool
}

func TestTLSConfigVerifies(t *testing.T) {
	p := newTestPKI(t)
	addr, peers := p.serve(t, false)
	pool, err := LoadCA(p.caFile)
	if err != nil {
		t.Fatal(err)
	}
	dial := func(s Settings) error {
		s, err := s.Check()
		if err != nil {
			t.Fatal(err)
		}
		c, err := tls.Dial("tcp", addr, s.TLSConfig())
		if err != nil {
			return err
		}
		defer c.Close()
		<-peers
		return nil
	}
	for _, tc := range []struct {
		name string
		s    Settings
		ok   bool
	}{
		{"CA and the certificate's name", Settings{RootCAs: pool, ServerName: "broker.test"}, true},
		{"CA and the address's IP", Settings{RootCAs: pool}, true},
		{"system roots do not know the test CA", Settings{Protocol: SSL, ServerName: "broker.test"}, false},
		{"wrong name", Settings{RootCAs: pool, ServerName: "other.test"}, false},
		{"wrong name, host name check off", Settings{RootCAs: pool, ServerName: "other.test", SkipHostnameCheck: true}, true},
		{"host name check off still verifies the chain", Settings{Protocol: SSL, ServerName: "other.test", SkipHostnameCheck: true}, false},
		{"insecure", Settings{InsecureSkipVerify: true}, true},
	} {
		if err := dial(tc.s); (err == nil) != tc.ok {
			t.Errorf("%s: dial error %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestTLSClientCertificate(t *testing.T) {
	p := newTestPKI(t)
	addr, peers := p.serve(t, true)
	pool, _ := LoadCA(p.caFile)
	cert, err := LoadKeyPair(p.clientCert, p.clientKey)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Settings{RootCAs: pool, Certificate: &cert}.Check()
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.Dial("tcp", addr, s.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := <-peers; got != "client.test" {
		t.Fatalf("server saw client certificate %q, want client.test", got)
	}
}

func TestKgoOpts(t *testing.T) {
	for _, tc := range []struct {
		s        Settings
		tls      bool
		mech     string
		nOptions int
	}{
		{Settings{}, false, "", 0},
		{Settings{Protocol: SSL}, true, "", 1},
		{Settings{Protocol: SASLPlaintext, Mechanism: Plain, Username: "u", Password: "p"}, false, "PLAIN", 1},
		{Settings{Mechanism: ScramSHA256, Username: "u", Password: "p"}, true, "SCRAM-SHA-256", 2},
		{Settings{Mechanism: ScramSHA512, Username: "u", Password: "p"}, true, "SCRAM-SHA-512", 2},
		{Settings{Mechanism: OAuthBearer, Token: StaticToken("t")}, true, "OAUTHBEARER", 2},
	} {
		opts, err := tc.s.KgoOpts()
		if err != nil || len(opts) != tc.nOptions {
			t.Fatalf("%+v: %d options, %v", tc.s, len(opts), err)
		}
		cl, err := kgo.NewClient(append(opts, kgo.SeedBrokers("127.0.0.1:1"))...)
		if err != nil {
			t.Fatal(err)
		}
		gotTLS := cl.OptValue(kgo.DialTLSConfig) != nil && cl.OptValue(kgo.DialTLSConfig).(*tls.Config) != nil
		var gotMech string
		if ms, _ := cl.OptValue(kgo.SASL).([]sasl.Mechanism); len(ms) > 0 {
			gotMech = ms[0].Name()
		}
		cl.Close()
		if gotTLS != tc.tls || gotMech != tc.mech {
			t.Errorf("%+v: client TLS %v SASL %q, want %v %q", tc.s, gotTLS, gotMech, tc.tls, tc.mech)
		}
	}
	if _, err := (Settings{Protocol: SASLSSL}).KgoOpts(); err == nil {
		t.Error("KgoOpts accepted SASL without a mechanism")
	}
}

func TestApplySarama(t *testing.T) {
	for _, s := range []Settings{
		{Protocol: SASLSSL, Mechanism: Plain, Username: "u", Password: "p"},
		{Mechanism: ScramSHA512, Username: "u", Password: "p"},
		{Protocol: SASLPlaintext, Mechanism: OAuthBearer, Token: StaticToken("t")},
	} {
		c := sarama.NewConfig()
		if err := s.ApplySarama(c); err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("%+v: sarama refuses the config: %v", s, err)
		}
		checked, _ := s.Check()
		if c.Net.TLS.Enable != checked.Protocol.TLS() || string(c.Net.SASL.Mechanism) != string(s.Mechanism) || !c.Net.SASL.Enable {
			t.Errorf("%+v: sarama TLS %v SASL %v %s", s, c.Net.TLS.Enable, c.Net.SASL.Enable, c.Net.SASL.Mechanism)
		}
	}
}

// TestSaramaSCRAMExchange runs sarama's side of SCRAM-SHA-512 against a
// server computed here from RFC 5802, with the right and a wrong password.
func TestSaramaSCRAMExchange(t *testing.T) {
	for _, tc := range []struct {
		password string
		ok       bool
	}{{"pencil", true}, {"wrong", false}} {
		c := sarama.NewConfig()
		if err := (Settings{Mechanism: ScramSHA512, Username: "user", Password: tc.password}).ApplySarama(c); err != nil {
			t.Fatal(err)
		}
		err := scramServer(c.Net.SASL.SCRAMClientGeneratorFunc(), "user", tc.password, "pencil")
		if (err == nil) != tc.ok {
			t.Errorf("password %q: %v, want ok=%v", tc.password, err, tc.ok)
		}
	}
}

// scramServer plays a SCRAM-SHA-512 server holding password for the client
// driven the way sarama drives it.
func scramServer(cl sarama.SCRAMClient, user, clientPassword, password string) error {
	if err := cl.Begin(user, clientPassword, ""); err != nil {
		return err
	}
	first, err := cl.Step("")
	if err != nil {
		return err
	}
	bare := strings.TrimPrefix(first, "n,,")
	cnonce := strings.TrimPrefix(strings.Split(bare, ",")[1], "r=")
	salt := []byte("salt-salt")
	serverFirst := fmt.Sprintf("r=%sSERVER,s=%s,i=4096", cnonce, base64.StdEncoding.EncodeToString(salt))
	final, err := cl.Step(serverFirst)
	if err != nil {
		return err
	}
	if cl.Done() {
		return errors.New("client done before the server's final message")
	}
	noProof := final[:strings.Index(final, ",p=")]
	proof, _ := base64.StdEncoding.DecodeString(final[strings.Index(final, ",p=")+3:])
	salted, _ := pbkdf2.Key(sha512.New, password, salt, 4096, sha512.Size)
	mac := func(k []byte, s string) []byte { h := hmac.New(sha512.New, k); h.Write([]byte(s)); return h.Sum(nil) }
	clientKey := mac(salted, "Client Key")
	stored := sha512.Sum512(clientKey)
	authMsg := bare + "," + serverFirst + "," + noProof
	sig := mac(stored[:], authMsg)
	want := make([]byte, len(sig))
	for i := range sig {
		want[i] = clientKey[i] ^ sig[i]
	}
	if !hmac.Equal(proof, want) {
		return errors.New("server: client proof does not match (SASL_AUTHENTICATION_FAILED)")
	}
	serverSig := mac(mac(salted, "Server Key"), authMsg)
	if _, err := cl.Step("v=" + base64.StdEncoding.EncodeToString(serverSig)); err != nil {
		return err
	}
	if !cl.Done() {
		return errors.New("client not done after the server's final message")
	}
	return nil
}

func TestReadSecret(t *testing.T) {
	for in, want := range map[string]string{"pw\n": "pw", "pw\r\n": "pw", " p w ": " p w ", "pw\n\n": "pw\n"} {
		if got, err := ReadSecret(writeFile(t, "s", in)); got != want || err != nil {
			t.Errorf("ReadSecret(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestSupportedKeysNamesEveryKey(t *testing.T) {
	keys := SupportedKeys()
	if len(keys) != len(supported) || !strings.HasPrefix(keys[0], "sasl.jaas.config: ") {
		t.Fatalf("SupportedKeys() = %q", keys)
	}
}
