package clientsec

import (
	"context"
	"os"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// KgoOpts returns the franz-go options that connect with the settings:
// kgo.DialTLSConfig for TLS and kgo.SASL with franz-go's plain, scram or
// oauth mechanism. PLAINTEXT gives none.
func (s Settings) KgoOpts() ([]kgo.Opt, error) {
	s, err := s.Check()
	if err != nil {
		return nil, err
	}
	var opts []kgo.Opt
	if c := s.TLSConfig(); c != nil {
		opts = append(opts, kgo.DialTLSConfig(c))
	}
	if m := s.mechanism(); m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

// mechanism is the franz-go SASL mechanism of checked settings, or nil.
func (s Settings) mechanism() sasl.Mechanism {
	if !s.Protocol.SASL() {
		return nil
	}
	switch s.Mechanism {
	case Plain:
		return plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism()
	case ScramSHA256:
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism()
	case ScramSHA512:
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism()
	case OAuthBearer:
		token := s.Token
		return oauth.Oauth(func(ctx context.Context) (oauth.Auth, error) {
			t, err := token(ctx)
			return oauth.Auth{Token: t}, err
		})
	}
	return nil
}

// ApplySarama sets c.Net.TLS and c.Net.SASL from the settings. SCRAM runs
// franz-go's SCRAM implementation under sarama's SCRAMClient interface, so
// both client families authenticate with the same code.
func (s Settings) ApplySarama(c *sarama.Config) error {
	s, err := s.Check()
	if err != nil {
		return err
	}
	if tc := s.TLSConfig(); tc != nil {
		c.Net.TLS.Enable = true
		c.Net.TLS.Config = tc
	}
	if !s.Protocol.SASL() {
		return nil
	}
	c.Net.SASL.Enable = true
	c.Net.SASL.Handshake = true
	c.Net.SASL.Version = sarama.SASLHandshakeV1
	c.Net.SASL.Mechanism = sarama.SASLMechanism(s.Mechanism)
	switch s.Mechanism {
	case Plain:
		c.Net.SASL.User, c.Net.SASL.Password = s.Username, s.Password
	case ScramSHA256, ScramSHA512:
		c.Net.SASL.User, c.Net.SASL.Password = s.Username, s.Password
		mech := s.Mechanism
		c.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &saramaSCRAM{mech: mech} }
	case OAuthBearer:
		c.Net.SASL.TokenProvider = saramaToken(s.Token)
	}
	return nil
}

// saramaSCRAM is a sarama.SCRAMClient over franz-go's SCRAM mechanism.
type saramaSCRAM struct {
	mech    Mechanism
	auth    scram.Auth
	session sasl.Session
	done    bool
}

func (c *saramaSCRAM) Begin(user, password, authzID string) error {
	c.auth = scram.Auth{User: user, Pass: password, Zid: authzID}
	return nil
}

// Step returns the client-first message on its first call, then answers
// each server message.
func (c *saramaSCRAM) Step(challenge string) (string, error) {
	if c.session == nil {
		m := c.auth.AsSha512Mechanism()
		if c.mech == ScramSHA256 {
			m = c.auth.AsSha256Mechanism()
		}
		sess, first, err := m.Authenticate(context.Background(), "")
		if err != nil {
			return "", err
		}
		c.session = sess
		return string(first), nil
	}
	done, resp, err := c.session.Challenge([]byte(challenge))
	c.done = done
	return string(resp), err
}

func (c *saramaSCRAM) Done() bool { return c.done }

// saramaToken is a sarama.AccessTokenProvider over a TokenSource.
type saramaToken TokenSource

func (t saramaToken) Token() (*sarama.AccessToken, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, err := t(ctx)
	if err != nil {
		return nil, err
	}
	return &sarama.AccessToken{Token: tok}, nil
}

// ReadSecret reads a password or token from a file, dropping one trailing
// newline (as "echo secret > file" writes) and nothing else.
func ReadSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	return s, nil
}
