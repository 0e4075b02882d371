package sasl

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	ksasl "github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// users is a fixed set of credentials.
type users struct {
	pass  map[string]string
	scram map[string]ScramCredential // by mechanism + " " + user
}

func (u users) Password(user string) (string, bool) { p, ok := u.pass[user]; return p, ok }
func (u users) Scram(mech, user string) (ScramCredential, bool) {
	c, ok := u.scram[mech+" "+user]
	return c, ok
}

var now = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func testServer(t testing.TB) *Server {
	t.Helper()
	u := users{pass: map[string]string{"alice": "alice-secret"}, scram: map[string]ScramCredential{}}
	for _, m := range []string{ScramSHA256, ScramSHA512} {
		c, err := NewScramCredential(m, "alice-secret", MinIterations)
		if err != nil {
			t.Fatal(err)
		}
		u.scram[m+" alice"] = c
	}
	s, err := NewServer(Config{Mechanisms: Mechanisms(), Users: u, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// drive runs an exchange between s and a franz-go client mechanism to its end.
func drive(t *testing.T, s *Server, m ksasl.Mechanism) (*Exchange, error) {
	t.Helper()
	sess, msg, err := m.Authenticate(context.Background(), "broker")
	if err != nil {
		t.Fatal(err)
	}
	e, err := s.Start(m.Name())
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		answer, done, err := e.Step(msg)
		if err != nil {
			return e, err
		}
		cdone, next, cerr := sess.Challenge(answer)
		if cerr != nil {
			t.Fatalf("the client refused the server's answer %q: %v", answer, cerr)
		}
		if done {
			if !cdone {
				t.Fatal("the server is done, the client is not")
			}
			return e, nil
		}
		msg = next
	}
	t.Fatal("exchange did not end")
	return nil, nil
}

func unsecured(claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none"}`)) + "." + enc([]byte(claims)) + "."
}

func TestEachMechanismAuthenticatesTheRightCredentialsAndRefusesWrongOnes(t *testing.T) {
	s := testServer(t)
	exp := fmt.Sprint(now.Add(time.Hour).Unix())
	cases := []struct {
		name   string
		mech   ksasl.Mechanism
		ok     bool
		public string
	}{
		{"plain", plain.Auth{User: "alice", Pass: "alice-secret"}.AsMechanism(), true, ""},
		{"plain wrong password", plain.Auth{User: "alice", Pass: "nope"}.AsMechanism(), false, "Authentication failed: Invalid username or password"},
		{"plain unknown user", plain.Auth{User: "bob", Pass: "alice-secret"}.AsMechanism(), false, "Authentication failed: Invalid username or password"},
		{"plain other authzid", plain.Auth{Zid: "root", User: "alice", Pass: "alice-secret"}.AsMechanism(), false, "Authentication failed: Client requested an authorization id that is different from username"},
		{"scram-256", scram.Auth{User: "alice", Pass: "alice-secret"}.AsSha256Mechanism(), true, ""},
		{"scram-512", scram.Auth{User: "alice", Pass: "alice-secret"}.AsSha512Mechanism(), true, ""},
		{"scram-256 wrong password", scram.Auth{User: "alice", Pass: "nope"}.AsSha256Mechanism(), false, "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256"},
		{"scram-512 wrong password", scram.Auth{User: "alice", Pass: "nope"}.AsSha512Mechanism(), false, "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512"},
		{"scram unknown user", scram.Auth{User: "bob", Pass: "x"}.AsSha512Mechanism(), false, "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512"},
		{"scram other authzid", scram.Auth{Zid: "root", User: "alice", Pass: "alice-secret"}.AsSha256Mechanism(), false, "Authentication failed: Client requested an authorization id that is different from username"},
		{"oauth", oauth.Auth{Token: unsecured(`{"sub":"alice","exp":` + exp + `}`)}.AsMechanism(), true, ""},
		{"oauth expired", oauth.Auth{Token: unsecured(`{"sub":"alice","exp":` + fmt.Sprint(now.Add(-time.Second).Unix()) + `}`)}.AsMechanism(), false, invalidToken},
		{"oauth no sub", oauth.Auth{Token: unsecured(`{"exp":` + exp + `}`)}.AsMechanism(), false, invalidToken},
		{"oauth no exp", oauth.Auth{Token: unsecured(`{"sub":"alice"}`)}.AsMechanism(), false, invalidToken},
		{"oauth signed", oauth.Auth{Token: strings.TrimSuffix(unsecured(`{"sub":"alice","exp":`+exp+`}`), ".") + ".c2ln"}.AsMechanism(), false, invalidToken},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := drive(t, s, tc.mech)
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if e.User() != "alice" {
					t.Fatalf("user %q, want alice", e.User())
				}
				if _, _, err := e.Step(nil); !errors.Is(err, ErrIllegalState) {
					t.Fatalf("a step after the end: %v, want ErrIllegalState", err)
				}
				return
			}
			var f *Failure
			if !errors.As(err, &f) || !errors.Is(err, ErrAuthenticationFailed) {
				t.Fatalf("got %v, want a *Failure wrapping ErrAuthenticationFailed", err)
			}
			if f.Public != tc.public {
				t.Fatalf("client told %q, want %q", f.Public, tc.public)
			}
			if e.User() != "" {
				t.Fatalf("a failed exchange names user %q", e.User())
			}
		})
	}
}

// RFC 7677's SCRAM-SHA-256 example, byte for byte: the server's first message, the proof it
// accepts and its signature.
func TestScramSHA256MatchesTheRFC7677Example(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	salted, err := SaltedPassword(ScramSHA256, []byte("pencil"), salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	u := users{scram: map[string]ScramCredential{ScramSHA256 + " user": CredentialFromSalted(ScramSHA256, salted, salt, 4096)}}
	s, err := NewServer(Config{Mechanisms: []string{ScramSHA256}, Users: u})
	if err != nil {
		t.Fatal(err)
	}
	s.nonce = func() string { return "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0" }
	e, err := s.Start(ScramSHA256)
	if err != nil {
		t.Fatal(err)
	}
	first, done, err := e.Step([]byte("n,,n=user,r=rOprNGfwEbeRWgbNEkqO"))
	if want := "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"; err != nil || done || string(first) != want {
		t.Fatalf("server-first %q %v %v, want %q", first, done, err, want)
	}
	final, done, err := e.Step([]byte("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="))
	if want := "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="; err != nil || !done || string(final) != want {
		t.Fatalf("server-final %q %v %v, want %q", final, done, err, want)
	}
	if e.User() != "user" {
		t.Fatalf("user %q", e.User())
	}
}

func TestMalformedMessagesFailTheExchange(t *testing.T) {
	s := testServer(t)
	cases := []struct{ mech, msg string }{
		{Plain, "alice"},
		{Plain, "\x00alice\x00"},
		{Plain, "\x00\x00alice-secret"},
		{ScramSHA256, ""},
		{ScramSHA256, "y,,n=alice,r=abc"},
		{ScramSHA256, "n,,r=abc,n=alice"},
		{ScramSHA256, "n,,n=al=ice,r=abc"},
		{ScramSHA256, "n,,n=alice,r="},
		{ScramSHA256, "n,x=1,n=alice,r=abc"},
		{OAuthBearer, "n,,auth=Bearer x\x01\x01"},
		{OAuthBearer, "n,,\x01auth=Basic abc\x01\x01"},
		{OAuthBearer, "n,,\x01\x01"},
		{OAuthBearer, "n,,\x01auth=Bearer a.b.\x01\x01"},
	}
	for _, tc := range cases {
		e, err := s.Start(tc.mech)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.Step([]byte(tc.msg)); !errors.Is(err, ErrAuthenticationFailed) {
			t.Errorf("%s %q: %v, want ErrAuthenticationFailed", tc.mech, tc.msg, err)
		}
	}
	// A client-final whose proof, nonce or channel binding is wrong.
	for _, final := range []string{"c=biws,r=%s,p=AAAA", "c=biws,r=%sX,p=%s", "c=eSws,r=%s,p=%s", "c=biws,r=%s"} {
		e, _ := s.Start(ScramSHA256)
		first, _, err := e.Step([]byte("n,,n=alice,r=abc"))
		if err != nil {
			t.Fatal(err)
		}
		nonce := strings.TrimPrefix(strings.Split(string(first), ",")[0], "r=")
		proof := base64.StdEncoding.EncodeToString(make([]byte, 32))
		msg := fmt.Sprintf(final, nonce, proof)
		if strings.Count(final, "%s") == 1 {
			msg = fmt.Sprintf(final, nonce)
		}
		if _, _, err := e.Step([]byte(msg)); !errors.Is(err, ErrAuthenticationFailed) {
			t.Errorf("client-final %q: %v, want ErrAuthenticationFailed", msg, err)
		}
	}
	if _, err := s.Start("GSSAPI"); !errors.Is(err, ErrUnsupportedMechanism) {
		t.Errorf("GSSAPI: %v, want ErrUnsupportedMechanism", err)
	}
	if _, err := NewServer(Config{Mechanisms: []string{"GSSAPI"}, Users: users{}}); !errors.Is(err, ErrUnsupportedMechanism) {
		t.Errorf("NewServer with GSSAPI: %v", err)
	}
}
