// Package sasl is the server side of the SASL mechanisms the bundled broker speaks, as Kafka
// does: PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) and OAUTHBEARER (RFC 7628)
// with Kafka's default validator of unsecured tokens. Each mechanism is a state machine fed the
// client's messages one by one (Exchange.Step); it knows nothing of connections or of the Kafka
// requests that carry its messages (SaslHandshake, SaslAuthenticate: the server package's
// business), which makes it pure and testable.
//
// A failed exchange returns a *Failure, wrapping ErrAuthenticationFailed: its Public text is
// what the client may be told (Kafka's texts), the rest is for the broker's log only.
package sasl

import (
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// The mechanisms, by their SASL names.
const (
	Plain       = "PLAIN"
	ScramSHA256 = "SCRAM-SHA-256"
	ScramSHA512 = "SCRAM-SHA-512"
	OAuthBearer = "OAUTHBEARER"
)

// Mechanisms returns every mechanism this package implements, in the order above.
func Mechanisms() []string { return []string{Plain, ScramSHA256, ScramSHA512, OAuthBearer} }

var (
	// ErrAuthenticationFailed is wrapped by every failed exchange's error (a *Failure): the
	// client's credentials or messages were refused.
	ErrAuthenticationFailed = errors.New("sasl: authentication failed")
	// ErrUnsupportedMechanism is returned by Server.Start for a mechanism that is not enabled.
	ErrUnsupportedMechanism = errors.New("sasl: unsupported mechanism")
	// ErrIllegalState is returned by Exchange.Step after the exchange ended.
	ErrIllegalState = errors.New("sasl: illegal state")
)

// Failure is a failed exchange.
type Failure struct {
	// Mechanism is the exchange's mechanism.
	Mechanism string
	// Public is what the client may be told; Kafka's text.
	Public string
	// Detail says what was wrong, for the broker's log.
	Detail string
}

func (f *Failure) Error() string {
	return fmt.Sprintf("sasl: %s authentication failed: %s", f.Mechanism, f.Detail)
}

// Unwrap makes a Failure match ErrAuthenticationFailed.
func (f *Failure) Unwrap() error { return ErrAuthenticationFailed }

// fail is a failure whose detail the client is not told: it gets Kafka's standard text.
func fail(mech, format string, args ...any) *Failure {
	return &Failure{Mechanism: mech, Detail: fmt.Sprintf(format, args...),
		Public: "Authentication failed during authentication due to invalid credentials with SASL mechanism " + mech}
}

// failPublic is a failure whose text the client is told, as Kafka's SaslAuthenticationException.
func failPublic(mech, text string) *Failure {
	return &Failure{Mechanism: mech, Detail: text, Public: text}
}

// Users is where a server finds credentials. Its methods are called concurrently.
type Users interface {
	// Password returns user's password for PLAIN.
	Password(user string) (string, bool)
	// Scram returns user's credential for a SCRAM mechanism.
	Scram(mechanism, user string) (ScramCredential, bool)
}

// Config configures a Server.
type Config struct {
	// Mechanisms are the enabled mechanisms (Kafka's sasl.enabled.mechanisms).
	Mechanisms []string
	// Users holds the credentials of PLAIN and SCRAM.
	Users Users
	// Now is the clock OAUTHBEARER checks token expiry against (default time.Now).
	Now func() time.Time
}

// Server starts exchanges. It is safe for concurrent use.
type Server struct {
	cfg   Config
	nonce func() string // the server's part of a SCRAM nonce (tests fix it)
}

// NewServer checks cfg and returns a server.
func NewServer(cfg Config) (*Server, error) {
	var errs []error
	if len(cfg.Mechanisms) == 0 {
		errs = append(errs, errors.New("sasl: Config.Mechanisms is empty"))
	}
	for _, m := range cfg.Mechanisms {
		if !slices.Contains(Mechanisms(), m) {
			errs = append(errs, fmt.Errorf("sasl: Config.Mechanisms: %q is not one of %s: %w", m, strings.Join(Mechanisms(), ", "), ErrUnsupportedMechanism))
		}
	}
	if cfg.Users == nil {
		errs = append(errs, errors.New("sasl: Config.Users is nil"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Mechanisms = slices.Clone(cfg.Mechanisms)
	return &Server{cfg: cfg, nonce: rand.Text}, nil
}

// Mechanisms returns the enabled mechanisms.
func (s *Server) Mechanisms() []string { return slices.Clone(s.cfg.Mechanisms) }

// Start begins an exchange with mechanism, which must be enabled.
func (s *Server) Start(mechanism string) (*Exchange, error) {
	if !slices.Contains(s.cfg.Mechanisms, mechanism) {
		return nil, fmt.Errorf("%w: %q (enabled: %s)", ErrUnsupportedMechanism, mechanism, strings.Join(s.cfg.Mechanisms, ", "))
	}
	e := &Exchange{mech: mechanism}
	switch mechanism {
	case Plain:
		e.step = func(msg []byte) ([]byte, error) { return s.plain(e, msg) }
	case ScramSHA256, ScramSHA512:
		sc := &scramServer{s: s, e: e, h: scramHash(mechanism)}
		e.step = sc.step
	case OAuthBearer:
		e.step = func(msg []byte) ([]byte, error) { return s.oauth(e, msg) }
	}
	return e, nil
}

// Exchange is one authentication: the client's messages in, the server's challenges out. It
// is not safe for concurrent use (a connection authenticates one message at a time).
type Exchange struct {
	mech string
	step func(msg []byte) ([]byte, error)
	user string
	done bool
	err  error
}

// Mechanism returns the exchange's mechanism.
func (e *Exchange) Mechanism() string { return e.mech }

// Step takes the client's next message and returns the server's answer to it; done reports
// that the client is authenticated (the answer is then the last). An error (a *Failure for
// refused credentials) ends the exchange: the client must not be served.
func (e *Exchange) Step(msg []byte) (answer []byte, done bool, err error) {
	if e.done || e.err != nil {
		return nil, false, fmt.Errorf("%w: %s exchange already ended", ErrIllegalState, e.mech)
	}
	answer, err = e.step(msg)
	if err != nil {
		e.err = err
		return nil, false, err
	}
	return answer, e.done, nil
}

// User returns the authenticated user (the principal's name), "" until the exchange is done.
func (e *Exchange) User() string {
	if !e.done {
		return ""
	}
	return e.user
}

// succeed ends the exchange with user authenticated.
func (e *Exchange) succeed(user string) {
	e.user, e.done = user, true
}
