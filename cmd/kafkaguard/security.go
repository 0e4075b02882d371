package main

import (
	"os"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/clientsec"
)

// Environment variables that carry secrets, so that they need not be on
// the command line.
const (
	envSASLPassword = "KAFKAGUARD_SASL_PASSWORD"
	envOAuthToken   = "KAFKAGUARD_SASL_OAUTH_TOKEN"
)

// securityHelp is appended to the help of each command that talks to a
// cluster.
const securityHelp = `

Secured clusters: --command-config FILE reads a Kafka client properties file
(security.protocol, sasl.mechanism, sasl.jaas.config, ssl.truststore.* and
ssl.keystore.* in PEM form, ssl.endpoint.identification.algorithm; other
security.*, sasl.* and ssl.* keys are refused by name, other keys ignored).
The --security-protocol, --sasl-* and --tls-* flags set the same and override
the file. A password comes from --sasl-password-file, $` + envSASLPassword + ` or
the file, never from a flag; an OAUTHBEARER token from --sasl-oauth-token-file
(read at each authentication) or $` + envOAuthToken + `. With a SASL mechanism and
no protocol the protocol is SASL_SSL; with only TLS flags, SSL.`

// securityFlags are the flags that connect a command to a secured cluster.
type securityFlags struct {
	fs                                    *pflag.FlagSet
	commandConfig, protocol, mechanism    *string
	username, passwordFile, tokenFile     *string
	tlsCA, tlsCert, tlsKey, tlsServerName *string
}

// addSecurityFlags defines the security flags of a command that talks to a
// cluster.
func addSecurityFlags(fs *pflag.FlagSet) *securityFlags {
	return &securityFlags{
		fs:            fs,
		commandConfig: fs.String("command-config", "", "Kafka client properties `FILE` with the security settings (see below)"),
		protocol:      fs.String("security-protocol", "", "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"),
		mechanism:     fs.String("sasl-mechanism", "", "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER"),
		username:      fs.String("sasl-username", "", "SASL username (PLAIN, SCRAM)"),
		passwordFile:  fs.String("sasl-password-file", "", "`FILE` holding the SASL password (else $"+envSASLPassword+")"),
		tokenFile:     fs.String("sasl-oauth-token-file", "", "`FILE` holding the OAUTHBEARER token, read at each authentication (else $"+envOAuthToken+")"),
		tlsCA:         fs.String("tls-ca", "", "PEM `FILE` of the CA certificates that sign the brokers' certificates (default: the system roots)"),
		tlsCert:       fs.String("tls-cert", "", "PEM `FILE` of the client certificate (with --tls-key)"),
		tlsKey:        fs.String("tls-key", "", "PEM `FILE` of the client certificate's unencrypted private key"),
		tlsServerName: fs.String("tls-server-name", "", "name the brokers' certificates are checked against (default: each broker's host)"),
	}
}

// changed reports whether any security flag was given.
func (f *securityFlags) changed() bool {
	for _, name := range []string{"command-config", "security-protocol", "sasl-mechanism", "sasl-username",
		"sasl-password-file", "sasl-oauth-token-file", "tls-ca", "tls-cert", "tls-key", "tls-server-name"} {
		if f.fs.Changed(name) {
			return true
		}
	}
	return false
}

// settings reads the properties file and the flags (which override it)
// and checks the result. Errors are usage errors naming the flag.
func (f *securityFlags) settings() (clientsec.Settings, error) {
	var s clientsec.Settings
	var err error
	if *f.commandConfig != "" {
		if s, err = clientsec.LoadProperties(*f.commandConfig); err != nil {
			return s, usageErrorf("--command-config: %w", err)
		}
	}
	if *f.protocol != "" {
		if s.Protocol, err = clientsec.ParseProtocol(*f.protocol); err != nil {
			return s, usageErrorf("--security-protocol: %w", err)
		}
	}
	if *f.mechanism != "" {
		if s.Mechanism, err = clientsec.ParseMechanism(*f.mechanism); err != nil {
			return s, usageErrorf("--sasl-mechanism: %w", err)
		}
	}
	if *f.username != "" {
		s.Username = *f.username
	}
	switch {
	case *f.passwordFile != "":
		if s.Password, err = clientsec.ReadSecret(*f.passwordFile); err != nil {
			return s, usageErrorf("--sasl-password-file: %w", err)
		}
		if s.Password == "" {
			return s, usageErrorf("--sasl-password-file: %s is empty", *f.passwordFile)
		}
	case s.Username != "" && os.Getenv(envSASLPassword) != "":
		s.Password = os.Getenv(envSASLPassword)
	}
	switch {
	case *f.tokenFile != "":
		if s.Token, err = clientsec.TokenFile(*f.tokenFile); err != nil {
			return s, usageErrorf("--sasl-oauth-token-file: %w", err)
		}
	case s.Mechanism == clientsec.OAuthBearer && s.Token == nil && os.Getenv(envOAuthToken) != "":
		s.Token = clientsec.StaticToken(os.Getenv(envOAuthToken))
	}
	if *f.tlsCA != "" {
		if s.RootCAs, err = clientsec.LoadCA(*f.tlsCA); err != nil {
			return s, usageErrorf("--tls-ca: %w", err)
		}
	}
	if (*f.tlsCert == "") != (*f.tlsKey == "") {
		return s, usageErrorf("--tls-cert and --tls-key go together")
	}
	if *f.tlsCert != "" {
		c, err := clientsec.LoadKeyPair(*f.tlsCert, *f.tlsKey)
		if err != nil {
			return s, usageErrorf("--tls-cert, --tls-key: %w", err)
		}
		s.Certificate = &c
	}
	if *f.tlsServerName != "" {
		s.ServerName = *f.tlsServerName
	}
	if s, err = s.Check(); err != nil {
		return s, usageErrorf("security settings (--command-config, --security-protocol, --sasl-*, --tls-*): %w", err)
	}
	return s, nil
}

// kgoOpts are the franz-go options of the security flags.
func (f *securityFlags) kgoOpts() ([]kgo.Opt, error) {
	s, err := f.settings()
	if err != nil {
		return nil, err
	}
	opts, err := s.KgoOpts()
	if err != nil {
		return nil, usageErrorf("%w", err)
	}
	return opts, nil
}
