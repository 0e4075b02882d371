package server

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	ksasl "github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/kafkaguard/kafkaguard/internal/broker/sasl"
	"github.com/kafkaguard/kafkaguard/internal/broker/wire"
)

// SASL makes a node's listener authenticate every connection, as Kafka's SASL_PLAINTEXT and
// SASL_SSL listeners do: until a connection has authenticated (SaslHandshake, then
// SaslAuthenticate), only ApiVersions, SaslHandshake and SaslAuthenticate are served, and any
// other request closes it. A failed authentication is answered SASL_AUTHENTICATION_FAILED and
// closes the connection.
type SASL struct {
	// Mechanisms are the enabled mechanisms (sasl.enabled.mechanisms): any of sasl.Plain,
	// sasl.ScramSHA256, sasl.ScramSHA512, sasl.OAuthBearer.
	Mechanisms []string
	// Users maps users to passwords. PLAIN checks them; each user also has SCRAM credentials
	// derived from its password (4096 iterations) for the enabled SCRAM mechanisms, unless
	// AlterUserScramCredentials set others in the cluster metadata, which win.
	Users map[string]string
	// InterBroker is the user (one of Users) the node's replica fetchers authenticate as, with
	// the first enabled mechanism of SCRAM-SHA-512, SCRAM-SHA-256, PLAIN, OAUTHBEARER (an
	// unsecured token naming the user).
	InterBroker string
}

// scramIterations is the iteration count of the SCRAM credentials derived from SASL.Users.
const scramIterations = sasl.MinIterations

// saslUsers are the node's credentials: SASL.Users, and the SCRAM credentials of the newest
// metadata image.
type saslUsers struct {
	b       *Broker
	pass    map[string]string
	derived map[string]map[string]sasl.ScramCredential // user -> mechanism -> credential
}

func newSASLUsers(b *Broker, cfg *SASL) (*saslUsers, error) {
	u := &saslUsers{b: b, pass: maps.Clone(cfg.Users), derived: map[string]map[string]sasl.ScramCredential{}}
	for user, pass := range cfg.Users {
		for _, m := range cfg.Mechanisms {
			if !sasl.IsScram(m) {
				continue
			}
			c, err := sasl.NewScramCredential(m, pass, scramIterations)
			if err != nil {
				return nil, err
			}
			if u.derived[user] == nil {
				u.derived[user] = map[string]sasl.ScramCredential{}
			}
			u.derived[user][m] = c
		}
	}
	return u, nil
}

func (u *saslUsers) Password(user string) (string, bool) {
	p, ok := u.pass[user]
	return p, ok
}

func (u *saslUsers) Scram(mechanism, user string) (sasl.ScramCredential, bool) {
	if c, ok := u.b.Image().ScramCredential(mechanism, user); ok {
		return c, true
	}
	c, ok := u.derived[user][mechanism]
	return c, ok
}

// scramUsers returns every user with a SCRAM credential and, for each, its credentials by
// mechanism: those of the image over those derived from the configuration (a node without
// SASL still keeps the cluster's SCRAM users).
func (b *Broker) scramUsers() map[string]map[string]sasl.ScramCredential {
	out := map[string]map[string]sasl.ScramCredential{}
	if u := b.saslUsers; u != nil {
		for user, creds := range u.derived {
			out[user] = maps.Clone(creds)
		}
	}
	for user, creds := range b.Image().Scram {
		if out[user] == nil {
			out[user] = map[string]sasl.ScramCredential{}
		}
		maps.Copy(out[user], creds)
	}
	return out
}

// connAuth is one connection's authentication state, nil on a listener without SASL. Only the
// connection's serving goroutine changes it; authenticated is also read by its frame reader.
type connAuth struct {
	ex            *sasl.Exchange // after SaslHandshake
	authenticated atomic.Bool
	user          string
	// last marks the answer being written as the connection's last (a refused handshake or
	// authentication).
	last bool
}

// maxUnauthenticatedRequest bounds a request frame before the connection has authenticated
// (Kafka's sasl.server.max.receive.size).
const maxUnauthenticatedRequest = 512 << 10

// servedBeforeAuth reports whether a request with this API key may be served before the
// connection has authenticated.
func servedBeforeAuth(key int16) bool { return key == 18 || key == 17 || key == 36 }

// startSASL builds the node's SASL server, if SASL is configured.
func (b *Broker) startSASL() error {
	cfg := b.cfg.SASL
	if cfg == nil {
		return nil
	}
	if _, ok := cfg.Users[cfg.InterBroker]; cfg.InterBroker != "" && !ok {
		return fmt.Errorf("server: SASL.InterBroker %q is not one of SASL.Users", cfg.InterBroker)
	}
	users, err := newSASLUsers(b, cfg)
	if err != nil {
		return fmt.Errorf("server: SASL: %w", err)
	}
	srv, err := sasl.NewServer(sasl.Config{Mechanisms: cfg.Mechanisms, Users: users})
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	b.sasl, b.saslUsers = srv, users
	return nil
}

// InterBrokerMechanism returns the client mechanism a node of cfg authenticates to the other
// nodes with, as cfg.InterBroker: the first enabled of SCRAM-SHA-512, SCRAM-SHA-256, PLAIN and
// OAUTHBEARER (an unsecured token naming the user, made anew by each call). It is nil without
// SASL.
func InterBrokerMechanism(cfg *SASL) ksasl.Mechanism {
	if cfg == nil {
		return nil
	}
	user := cfg.InterBroker
	pass := cfg.Users[user]
	for _, m := range []string{sasl.ScramSHA512, sasl.ScramSHA256, sasl.Plain, sasl.OAuthBearer} {
		if !slices.Contains(cfg.Mechanisms, m) {
			continue
		}
		switch m {
		case sasl.ScramSHA512:
			return scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()
		case sasl.ScramSHA256:
			return scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()
		case sasl.Plain:
			return plain.Auth{User: user, Pass: pass}.AsMechanism()
		case sasl.OAuthBearer:
			return oauth.Auth{Token: sasl.UnsecuredToken(user, time.Hour)}.AsMechanism()
		}
	}
	return nil
}

// errAuthenticationRefused is a fetcher's authentication the leader refused.
var errAuthenticationRefused = errors.New("server: inter-broker authentication refused")

// authenticate authenticates a fetcher's new connection, if the node has SASL.
func (b *Broker) authenticate(ctx context.Context, c *wire.Client) error {
	m := InterBrokerMechanism(b.cfg.SASL)
	if m == nil {
		return nil
	}
	if err := c.Authenticate(ctx, m); err != nil {
		return fmt.Errorf("%w: %w", errAuthenticationRefused, err)
	}
	return nil
}
