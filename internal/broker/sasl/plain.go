package sasl

import (
	"bytes"
	"crypto/subtle"
)

// plain checks a PLAIN message, authzid NUL authcid NUL password (RFC 4616), against the
// user's password, with Kafka's PlainSaslServer's texts.
func (s *Server) plain(e *Exchange, msg []byte) ([]byte, error) {
	tokens := bytes.Split(msg, []byte{0})
	if len(tokens) != 3 {
		return nil, fail(Plain, "Invalid SASL/PLAIN response: expected 3 tokens, got %d", len(tokens))
	}
	authzid, user, pass := string(tokens[0]), string(tokens[1]), tokens[2]
	switch {
	case user == "":
		return nil, failPublic(Plain, "Authentication failed: username not specified")
	case len(pass) == 0:
		return nil, failPublic(Plain, "Authentication failed: password not specified")
	}
	want, ok := s.cfg.Users.Password(user)
	if !ok || subtle.ConstantTimeCompare([]byte(want), pass) != 1 {
		return nil, failPublic(Plain, "Authentication failed: Invalid username or password")
	}
	if authzid != "" && authzid != user {
		return nil, failPublic(Plain, "Authentication failed: Client requested an authorization id that is different from username")
	}
	e.succeed(user)
	return nil, nil
}
