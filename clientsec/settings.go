package clientsec

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Protocol is a Kafka security.protocol.
type Protocol string

// The security protocols.
const (
	Plaintext     Protocol = "PLAINTEXT"
	SSL           Protocol = "SSL"
	SASLPlaintext Protocol = "SASL_PLAINTEXT"
	SASLSSL       Protocol = "SASL_SSL"
)

// ParseProtocol parses a security.protocol, ignoring case.
func ParseProtocol(s string) (Protocol, error) {
	switch p := Protocol(strings.ToUpper(strings.TrimSpace(s))); p {
	case Plaintext, SSL, SASLPlaintext, SASLSSL:
		return p, nil
	}
	return "", fmt.Errorf("%w: security protocol %q (want PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL)", ErrUnsupported, s)
}

// TLS reports whether the protocol encrypts the connection.
func (p Protocol) TLS() bool { return p == SSL || p == SASLSSL }

// SASL reports whether the protocol authenticates with SASL.
func (p Protocol) SASL() bool { return p == SASLPlaintext || p == SASLSSL }

// Mechanism is a SASL mechanism (sasl.mechanism).
type Mechanism string

// The SASL mechanisms.
const (
	Plain       Mechanism = "PLAIN"
	ScramSHA256 Mechanism = "SCRAM-SHA-256"
	ScramSHA512 Mechanism = "SCRAM-SHA-512"
	OAuthBearer Mechanism = "OAUTHBEARER"
)

// ParseMechanism parses a SASL mechanism, ignoring case.
func ParseMechanism(s string) (Mechanism, error) {
	switch m := Mechanism(strings.ToUpper(strings.TrimSpace(s))); m {
	case Plain, ScramSHA256, ScramSHA512, OAuthBearer:
		return m, nil
	}
	return "", fmt.Errorf("%w: SASL mechanism %q (want PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER)", ErrUnsupported, s)
}

// ErrUnsupported is wrapped by the errors for a protocol, mechanism,
// property or file format this package does not support.
var ErrUnsupported = errors.New("not supported")

// TokenSource returns the OAUTHBEARER token for one authentication.
type TokenSource func(ctx context.Context) (string, error)

// Settings are a client's security settings. The zero value is PLAINTEXT.
type Settings struct {
	// Protocol is the security protocol; "" is derived by [Settings.Check]:
	// SASL_SSL with a Mechanism, SSL with any TLS setting, else PLAINTEXT.
	Protocol Protocol

	// RootCAs verify the brokers' certificates (nil: the system roots).
	RootCAs *x509.CertPool
	// Certificate is the client's certificate, for brokers that ask for one.
	Certificate *tls.Certificate
	// ServerName overrides the name the brokers' certificates are checked
	// against (default: the host of each broker's address).
	ServerName string
	// SkipHostnameCheck verifies the brokers' certificate chains but not
	// their names (ssl.endpoint.identification.algorithm empty).
	SkipHostnameCheck bool
	// InsecureSkipVerify accepts any certificate. For tests only.
	InsecureSkipVerify bool

	// Mechanism is the SASL mechanism.
	Mechanism Mechanism
	// Username and Password are the PLAIN or SCRAM credentials.
	Username, Password string
	// Token gives the OAUTHBEARER token.
	Token TokenSource
}

// Check completes the protocol (see [Settings.Protocol]) and refuses
// settings that do not fit together: SASL without a mechanism or
// credentials, a mechanism or TLS setting with a protocol that does not use
// it.
func (s Settings) Check() (Settings, error) {
	tlsSet := s.RootCAs != nil || s.Certificate != nil || s.ServerName != "" || s.SkipHostnameCheck || s.InsecureSkipVerify
	if s.Protocol == "" {
		switch {
		case s.Mechanism != "":
			s.Protocol = SASLSSL
		case tlsSet:
			s.Protocol = SSL
		default:
			s.Protocol = Plaintext
		}
	}
	if _, err := ParseProtocol(string(s.Protocol)); err != nil {
		return s, err
	}
	if tlsSet && !s.Protocol.TLS() {
		return s, fmt.Errorf("TLS settings (CA, certificate, server name) given, but security protocol %s does not use TLS", s.Protocol)
	}
	if !s.Protocol.SASL() {
		if s.Mechanism != "" || s.Username != "" || s.Password != "" || s.Token != nil {
			return s, fmt.Errorf("SASL settings given, but security protocol %s does not use SASL", s.Protocol)
		}
		return s, nil
	}
	if s.Mechanism == "" {
		return s, fmt.Errorf("security protocol %s needs a SASL mechanism (Kafka's default GSSAPI is %w)", s.Protocol, ErrUnsupported)
	}
	if _, err := ParseMechanism(string(s.Mechanism)); err != nil {
		return s, err
	}
	if s.Mechanism == OAuthBearer {
		if s.Token == nil {
			return s, errors.New("SASL mechanism OAUTHBEARER needs a token")
		}
		if s.Username != "" || s.Password != "" {
			return s, errors.New("SASL mechanism OAUTHBEARER takes a token, not a username and password")
		}
		return s, nil
	}
	if s.Username == "" || s.Password == "" {
		return s, fmt.Errorf("SASL mechanism %s needs a username and a password", s.Mechanism)
	}
	if s.Token != nil {
		return s, fmt.Errorf("SASL mechanism %s takes a username and password, not a token", s.Mechanism)
	}
	return s, nil
}

// TLSConfig returns the TLS configuration of settings that passed
// [Settings.Check], or nil when the protocol does not use TLS.
func (s Settings) TLSConfig() *tls.Config {
	if !s.Protocol.TLS() {
		return nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: s.RootCAs, ServerName: s.ServerName}
	if s.Certificate != nil {
		c.Certificates = []tls.Certificate{*s.Certificate}
	}
	switch {
	case s.InsecureSkipVerify:
		c.InsecureSkipVerify = true
	case s.SkipHostnameCheck:
		// Verify the chain as usual, only without a name to match.
		c.InsecureSkipVerify = true
		roots := s.RootCAs
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("clientsec: the broker sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, ic := range cs.PeerCertificates[1:] {
				inter.AddCert(ic)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
			return err
		}
	}
	return c
}

// LoadCA reads a PEM file of CA certificates.
func LoadCA(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no PEM certificate found", path)
	}
	return pool, nil
}

// LoadKeyPair reads a client certificate chain and its private key from PEM
// files (they may be the same file). An encrypted key is refused with
// [ErrUnsupported].
func LoadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyPEM := certPEM
	if keyFile != certFile {
		if keyPEM, err = os.ReadFile(keyFile); err != nil {
			return tls.Certificate{}, err
		}
	}
	for rest := keyPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED") {
			return tls.Certificate{}, fmt.Errorf("%s: encrypted private keys are %w (decrypt it with openssl pkcs8 first)", keyFile, ErrUnsupported)
		}
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%s, %s: %w", certFile, keyFile, err)
	}
	return c, nil
}

// StaticToken is a [TokenSource] that always gives token.
func StaticToken(token string) TokenSource {
	return func(context.Context) (string, error) { return token, nil }
}

// TokenFile is a [TokenSource] that reads the token from path at every
// authentication (surrounding white space removed), so that a token
// rotated on disk is used from the next connection on. It reads the file
// once now to refuse a missing or empty one early.
func TokenFile(path string) (TokenSource, error) {
	read := func(context.Context) (string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", err
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return "", fmt.Errorf("%s: empty token", path)
		}
		return tok, nil
	}
	if _, err := read(context.Background()); err != nil {
		return nil, err
	}
	return read, nil
}
