package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"github.com/kafkaguard/kafkaguard/internal/broker/sasl"
	"github.com/kafkaguard/kafkaguard/internal/broker/server"
)

// brokerSecurity are the "kafkaguard broker" flags that secure its listeners: TLS and SASL.
type brokerSecurity struct {
	tlsCert, tlsKey, tlsClientCA string
	saslUsers                    []string // USER:PASSWORD-FILE
	saslUsersFile                string
	mechanisms                   []string
}

// brokerSecurityFlags defines the security flags on fs.
func brokerSecurityFlags(fs *pflag.FlagSet) *brokerSecurity {
	s := &brokerSecurity{}
	fs.StringVar(&s.tlsCert, "tls-cert", "", "PEM certificate (chain) the listeners present: they speak TLS only (needs --tls-key)")
	fs.StringVar(&s.tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&s.tlsClientCA, "tls-client-ca", "", "PEM CA certificates: clients must present a certificate one of them signed (needs --tls-cert)")
	fs.StringArrayVar(&s.saslUsers, "sasl-user", nil, "USER:PASSWORD-FILE: a SASL user whose password is the file's content (repeatable); enables SASL")
	fs.StringVar(&s.saslUsersFile, "sasl-users-file", "", "file of SASL users, one USER:PASSWORD a line (# comments); enables SASL")
	fs.StringSliceVar(&s.mechanisms, "sasl-mechanisms", nil, "enabled SASL mechanisms (default with users: "+strings.Join(sasl.Mechanisms(), ",")+")")
	return s
}

// config returns the listeners' TLS and SASL, each nil when not asked for. Bad combinations
// are usage errors; unreadable files are failures.
func (s *brokerSecurity) config() (*server.TLS, *server.SASL, error) {
	switch {
	case (s.tlsCert == "") != (s.tlsKey == ""):
		return nil, nil, usageErrorf("--tls-cert and --tls-key go together")
	case s.tlsClientCA != "" && s.tlsCert == "":
		return nil, nil, usageErrorf("--tls-client-ca needs --tls-cert and --tls-key")
	}
	var tlsCfg *server.TLS
	if s.tlsCert != "" {
		var err error
		if tlsCfg, err = server.LoadTLS(s.tlsCert, s.tlsKey, s.tlsClientCA); err != nil {
			return nil, nil, failure(err)
		}
	}
	users := map[string]string{}
	for _, u := range s.saslUsers {
		user, file, ok := strings.Cut(u, ":")
		if !ok || user == "" || file == "" {
			return nil, nil, usageErrorf("--sasl-user %q: want USER:PASSWORD-FILE (the password is never given on the command line)", u)
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, nil, failure(fmt.Errorf("--sasl-user %s: %w", user, err))
		}
		pass := strings.TrimRight(string(data), "\r\n")
		if pass == "" {
			return nil, nil, failure(fmt.Errorf("--sasl-user %s: password file %s is empty", user, file))
		}
		users[user] = pass
	}
	if s.saslUsersFile != "" {
		if err := readUsersFile(s.saslUsersFile, users); err != nil {
			return nil, nil, failure(err)
		}
	}
	mechs := s.mechanisms
	for _, m := range mechs {
		if !slices.Contains(sasl.Mechanisms(), m) {
			return nil, nil, usageErrorf("--sasl-mechanisms: %q is not one of %s", m, strings.Join(sasl.Mechanisms(), ","))
		}
	}
	if len(users) == 0 {
		// OAUTHBEARER with Kafka's default validator needs no users.
		if len(mechs) > 0 && !slices.Equal(mechs, []string{sasl.OAuthBearer}) {
			return nil, nil, usageErrorf("--sasl-mechanisms %s needs users (--sasl-user or --sasl-users-file)", strings.Join(mechs, ","))
		}
		if len(mechs) == 0 {
			return tlsCfg, nil, nil
		}
	}
	if len(mechs) == 0 {
		mechs = sasl.Mechanisms()
	}
	return tlsCfg, &server.SASL{Mechanisms: mechs, Users: users}, nil
}

// readUsersFile adds the USER:PASSWORD lines of file to users.
func readUsersFile(file string, users map[string]string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("--sasl-users-file: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		user, pass, ok := strings.Cut(line, ":")
		if !ok || user == "" || pass == "" {
			return fmt.Errorf("--sasl-users-file %s line %d: want USER:PASSWORD", file, n)
		}
		users[user] = pass
	}
	return sc.Err()
}
