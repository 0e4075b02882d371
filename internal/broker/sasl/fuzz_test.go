package sasl

import (
	"errors"
	"testing"
	"time"
)

// FuzzExchange feeds a mechanism (picked by mech) one or two client messages. Whatever they
// hold, the exchange must not panic; a refusal must be a *Failure that wraps
// ErrAuthenticationFailed and has a text for the client; and only a known user (or, for
// OAUTHBEARER, a token's subject) may come out authenticated.
func FuzzExchange(f *testing.F) {
	s := testServer(f)
	s.cfg.Now = func() time.Time { return now }
	mechs := Mechanisms()
	f.Fuzz(func(t *testing.T, mech byte, first, second []byte) {
		m := mechs[int(mech)%len(mechs)]
		e, err := s.Start(m)
		if err != nil {
			t.Fatal(err)
		}
		for _, msg := range [][]byte{first, second} {
			answer, done, err := e.Step(msg)
			if err != nil {
				var fl *Failure
				if !errors.As(err, &fl) || !errors.Is(err, ErrAuthenticationFailed) || fl.Public == "" {
					t.Fatalf("%s refused %q with %v: want a *Failure with a text for the client", m, msg, err)
				}
				if e.User() != "" {
					t.Fatalf("%s: a refused exchange names user %q", m, e.User())
				}
				return
			}
			if done {
				if u := e.User(); m != OAuthBearer && u != "alice" || u == "" {
					t.Fatalf("%s authenticated %q from %q", m, u, msg)
				}
				return
			}
			if len(answer) == 0 {
				t.Fatalf("%s: an exchange that goes on sent no challenge", m)
			}
		}
	})
}
