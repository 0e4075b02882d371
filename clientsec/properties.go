package clientsec

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The JAAS login modules sasl.jaas.config may name.
const (
	plainModule = "org.apache.kafka.common.security.plain.PlainLoginModule"
	scramModule = "org.apache.kafka.common.security.scram.ScramLoginModule"
	oauthModule = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"
	// oauthHandler is the login callback handler that fetches a token from
	// sasl.oauthbearer.token.endpoint.url; only file: URLs are supported.
	oauthHandler = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler"
)

// supported maps each properties key LoadProperties understands to what it
// accepts.
var supported = map[string]string{
	"security.protocol":                     "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
	"sasl.mechanism":                        "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER",
	"sasl.jaas.config":                      "PlainLoginModule or ScramLoginModule with username and password; OAuthBearerLoginModule with unsecuredLogin* options or none",
	"sasl.login.callback.handler.class":     oauthHandler + " (with a file: token endpoint)",
	"sasl.oauthbearer.token.endpoint.url":   "file:PATH of a token, read at every authentication",
	"ssl.truststore.location":               "PEM file of CA certificates",
	"ssl.truststore.type":                   "PEM",
	"ssl.keystore.location":                 "PEM file with the client's certificate chain and unencrypted private key",
	"ssl.keystore.type":                     "PEM",
	"ssl.key.password":                      "empty (encrypted keys are not supported)",
	"ssl.endpoint.identification.algorithm": "https (default) or empty (verify the chain but not the host name)",
}

// SupportedKeys lists the security properties [LoadProperties] understands,
// each as "key: what it accepts", sorted.
func SupportedKeys() []string {
	out := make([]string, 0, len(supported))
	for k, v := range supported {
		out = append(out, k+": "+v)
	}
	slices.Sort(out)
	return out
}

// PropertyError is an error in a properties file, naming the key.
type PropertyError struct {
	File string // File is the properties file.
	Key  string // Key is the offending key.
	Err  error
}

func (e *PropertyError) Error() string { return fmt.Sprintf("%s: %s: %v", e.File, e.Key, e.Err) }

// Unwrap returns the underlying error.
func (e *PropertyError) Unwrap() error { return e.Err }

// LoadProperties reads a Kafka client properties file (see the package
// doc for the keys it understands) into settings, reading the files it
// names. The result has not been through [Settings.Check], so that flags
// may still override parts of it.
func LoadProperties(path string) (Settings, error) {
	f, err := os.Open(path)
	if err != nil {
		return Settings{}, err
	}
	defer f.Close()
	props, err := parseProperties(f)
	if err != nil {
		return Settings{}, fmt.Errorf("%s: %w", path, err)
	}
	return fromProperties(path, props)
}

// fromProperties turns parsed properties into settings.
func fromProperties(file string, props map[string]string) (Settings, error) {
	var s Settings
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	bad := func(key string, err error) (Settings, error) {
		return Settings{}, &PropertyError{File: file, Key: key, Err: err}
	}
	for _, k := range keys {
		if _, ok := supported[k]; !ok && (strings.HasPrefix(k, "security.") || strings.HasPrefix(k, "sasl.") || strings.HasPrefix(k, "ssl.")) {
			return bad(k, fmt.Errorf("key %w (supported: %s)", ErrUnsupported, strings.Join(slices.Sorted(maps.Keys(supported)), ", ")))
		}
	}
	get := func(k string) (string, bool) { v, ok := props[k]; return strings.TrimSpace(v), ok }
	var err error
	if v, ok := get("security.protocol"); ok {
		if s.Protocol, err = ParseProtocol(v); err != nil {
			return bad("security.protocol", err)
		}
	}
	if v, ok := get("sasl.mechanism"); ok {
		if s.Mechanism, err = ParseMechanism(v); err != nil {
			return bad("sasl.mechanism", err)
		}
	}
	for _, k := range []string{"ssl.truststore.type", "ssl.keystore.type"} {
		if v, ok := get(k); ok && !strings.EqualFold(v, "PEM") {
			return bad(k, fmt.Errorf("store type %q is %w: only PEM (convert with keytool or openssl)", v, ErrUnsupported))
		}
	}
	if v, ok := get("ssl.truststore.location"); ok && v != "" {
		if t, _ := get("ssl.truststore.type"); !strings.EqualFold(t, "PEM") {
			return bad("ssl.truststore.type", fmt.Errorf("must be PEM with ssl.truststore.location (Kafka's default JKS is %w)", ErrUnsupported))
		}
		if s.RootCAs, err = LoadCA(v); err != nil {
			return bad("ssl.truststore.location", err)
		}
	}
	if v, ok := get("ssl.key.password"); ok && v != "" {
		return bad("ssl.key.password", fmt.Errorf("encrypted private keys are %w: decrypt the key (openssl pkcs8 -in key.pem -out key-plain.pem) and drop this key", ErrUnsupported))
	}
	if v, ok := get("ssl.keystore.location"); ok && v != "" {
		if t, _ := get("ssl.keystore.type"); !strings.EqualFold(t, "PEM") {
			return bad("ssl.keystore.type", fmt.Errorf("must be PEM with ssl.keystore.location (Kafka's default JKS is %w)", ErrUnsupported))
		}
		c, err := LoadKeyPair(v, v)
		if err != nil {
			return bad("ssl.keystore.location", err)
		}
		s.Certificate = &c
	}
	if v, ok := get("ssl.endpoint.identification.algorithm"); ok {
		switch strings.ToLower(v) {
		case "https":
		case "":
			s.SkipHostnameCheck = true
		default:
			return bad("ssl.endpoint.identification.algorithm", fmt.Errorf("%q is %w: want https or empty", v, ErrUnsupported))
		}
	}
	handler, _ := get("sasl.login.callback.handler.class")
	if handler != "" && handler != oauthHandler {
		return bad("sasl.login.callback.handler.class", fmt.Errorf("%q is %w: only %s", handler, ErrUnsupported, oauthHandler))
	}
	endpoint, _ := get("sasl.oauthbearer.token.endpoint.url")
	if (handler == "") != (endpoint == "") {
		return bad("sasl.oauthbearer.token.endpoint.url", errors.New("goes together with sasl.login.callback.handler.class="+oauthHandler))
	}
	if endpoint != "" {
		u, err := url.Parse(endpoint)
		if err != nil || u.Scheme != "file" {
			return bad("sasl.oauthbearer.token.endpoint.url", fmt.Errorf("%q: only file: URLs are %w", endpoint, errors.Join(ErrUnsupported, err)))
		}
		if s.Token, err = TokenFile(u.Path); err != nil {
			return bad("sasl.oauthbearer.token.endpoint.url", err)
		}
	}
	if v, ok := props["sasl.jaas.config"]; ok {
		if err := s.applyJAAS(v, endpoint != ""); err != nil {
			return bad("sasl.jaas.config", err)
		}
	}
	return s, nil
}

// applyJAAS sets the credentials a sasl.jaas.config gives.
func (s *Settings) applyJAAS(text string, haveToken bool) error {
	mod, opts, err := parseJAAS(text)
	if err != nil {
		return err
	}
	want := map[Mechanism]string{Plain: plainModule, ScramSHA256: scramModule, ScramSHA512: scramModule, OAuthBearer: oauthModule}
	if s.Mechanism != "" && want[s.Mechanism] != mod {
		return fmt.Errorf("login module %s does not fit sasl.mechanism %s (want %s)", mod, s.Mechanism, want[s.Mechanism])
	}
	switch mod {
	case plainModule, scramModule:
		for k := range opts {
			if k != "username" && k != "password" {
				return fmt.Errorf("option %q of %s is %w (only username and password)", k, mod, ErrUnsupported)
			}
		}
		s.Username, s.Password = opts["username"], opts["password"]
		if s.Mechanism == "" && mod == plainModule {
			s.Mechanism = Plain
		}
	case oauthModule:
		if len(opts) == 0 {
			if !haveToken {
				return errors.New("OAuthBearerLoginModule without unsecuredLogin options needs sasl.oauthbearer.token.endpoint.url")
			}
			break
		}
		if haveToken {
			return errors.New("unsecuredLogin options and sasl.oauthbearer.token.endpoint.url both give a token")
		}
		tok, err := unsecuredToken(opts)
		if err != nil {
			return err
		}
		s.Token = tok
		if s.Mechanism == "" {
			s.Mechanism = OAuthBearer
		}
	default:
		return fmt.Errorf("login module %s is %w (want %s, %s or %s)", mod, ErrUnsupported, plainModule, scramModule, oauthModule)
	}
	return nil
}

// unsecuredToken builds the token source of OAuthBearerLoginModule's
// unsecuredLogin options: an unsigned JWT ("alg": "none") as Kafka's
// default login callback handler makes, issued anew at each authentication.
func unsecuredToken(opts map[string]string) (TokenSource, error) {
	claims := map[string]any{}
	principal, lifetime := "sub", 3600*time.Second
	for k, v := range opts {
		name, ok := "", false
		switch {
		case k == "unsecuredLoginPrincipalClaimName":
			principal = v
		case k == "unsecuredLoginLifetimeSeconds":
			n, err := strconv.ParseInt(v, 10, 32)
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("unsecuredLoginLifetimeSeconds must be a positive integer, got %q", v)
			}
			lifetime = time.Duration(n) * time.Second
		case strings.HasPrefix(k, "unsecuredLoginStringClaim_"):
			name, ok = strings.TrimPrefix(k, "unsecuredLoginStringClaim_"), true
			claims[name] = v
		case strings.HasPrefix(k, "unsecuredLoginNumberClaim_"):
			name, ok = strings.TrimPrefix(k, "unsecuredLoginNumberClaim_"), true
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return nil, fmt.Errorf("%s must be a number, got %q", k, v)
			}
			claims[name] = n
		case strings.HasPrefix(k, "unsecuredLoginListClaim_"):
			name, ok = strings.TrimPrefix(k, "unsecuredLoginListClaim_"), true
			// The first character separates the items, as in Kafka.
			list := []string{}
			if r, size := utf8.DecodeRuneInString(v); size > 0 {
				for _, item := range strings.Split(v[size:], string(r)) {
					if item != "" {
						list = append(list, item)
					}
				}
			}
			claims[name] = list
		default:
			return nil, fmt.Errorf("option %q of OAuthBearerLoginModule is %w", k, ErrUnsupported)
		}
		if ok && (name == "" || name == "iat" || name == "exp") {
			return nil, fmt.Errorf("option %q: claim name must be given and not iat or exp", k)
		}
	}
	if s, _ := claims[principal].(string); s == "" {
		return nil, fmt.Errorf("unsecured token needs its principal: unsecuredLoginStringClaim_%s", principal)
	}
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`))
	return func(context.Context) (string, error) {
		now := time.Now()
		c := make(map[string]any, len(claims)+2)
		for k, v := range claims {
			c[k] = v
		}
		c["iat"], c["exp"] = float64(now.Unix()), float64(now.Add(lifetime).Unix())
		b, err := json.Marshal(c)
		if err != nil {
			return "", err
		}
		return header + "." + base64.RawURLEncoding.EncodeToString(b) + ".", nil
	}, nil
}

// parseProperties reads the java.util.Properties text format: "key=value",
// "key: value" or "key value" lines, # and ! comments, a trailing
// backslash continuing a line, and the escapes \t \n \r \f \uXXXX and \c
// for any other c.
func parseProperties(r io.Reader) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimLeft(sc.Text(), " \t\f")
		if line == "" || line[0] == '#' || line[0] == '!' {
			continue
		}
		start := lineNo
		for continued(line) {
			line = line[:len(line)-1]
			if !sc.Scan() {
				break
			}
			lineNo++
			line += strings.TrimLeft(sc.Text(), " \t\f")
		}
		key, value, err := splitProperty(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", start, err)
		}
		out[key] = value
	}
	return out, sc.Err()
}

// continued reports whether line ends with an odd number of backslashes.
func continued(line string) bool {
	n := 0
	for i := len(line) - 1; i >= 0 && line[i] == '\\'; i-- {
		n++
	}
	return n%2 == 1
}

// splitProperty splits a logical line into its unescaped key and value.
func splitProperty(line string) (string, string, error) {
	i := 0
	for i < len(line) {
		c := line[i]
		if c == '\\' {
			i += 2
			continue
		}
		if c == '=' || c == ':' || c == ' ' || c == '\t' || c == '\f' {
			break
		}
		i++
	}
	i = min(i, len(line))
	key, rest := line[:i], strings.TrimLeft(line[i:], " \t\f")
	if rest != "" && (rest[0] == '=' || rest[0] == ':') {
		rest = strings.TrimLeft(rest[1:], " \t\f")
	}
	k, err := unescape(key)
	if err != nil {
		return "", "", err
	}
	v, err := unescape(rest)
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", k, err)
	}
	return k, v, nil
}

func unescape(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch c := s[i]; c {
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 'f':
			b.WriteByte('\f')
		case 'u':
			if i+5 > len(s) {
				return "", errors.New(`malformed \uXXXX escape`)
			}
			n, err := strconv.ParseUint(s[i+1:i+5], 16, 16)
			if err != nil {
				return "", errors.New(`malformed \uXXXX escape`)
			}
			b.WriteRune(rune(n))
			i += 4
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}
