package sasl

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
)

// invalidToken is what a client with a refused token is told, Kafka's error status.
const invalidToken = `{"status":"invalid_token"}`

// oauth checks an OAUTHBEARER initial response (RFC 7628: a GS2 header, then "auth=Bearer
// token" among \x01-separated key=value pairs) whose token is an unsecured JWS, as Kafka's
// default validator (OAuthBearerUnsecuredValidatorCallbackHandler) does: the header's alg is
// "none", the signature is empty, the "sub" claim names the principal, and the "exp" claim
// (seconds since the epoch) is in the future. A refused token ends the exchange at once (Kafka
// first answers with the error status and fails on the client's acknowledgement; the client's
// outcome is the same).
func (s *Server) oauth(e *Exchange, msg []byte) ([]byte, error) {
	authzid, token, err := parseOAuthInitial(msg)
	if err != nil {
		return nil, fail(OAuthBearer, "invalid initial response: %v", err)
	}
	sub, err := s.validateUnsecured(token)
	if err != nil {
		return nil, &Failure{Mechanism: OAuthBearer, Detail: err.Error(), Public: invalidToken}
	}
	if authzid != "" && authzid != sub {
		return nil, failPublic(OAuthBearer, "Authentication failed: Client requested an authorization id that is different from the principal")
	}
	e.succeed(sub)
	return nil, nil
}

func parseOAuthInitial(msg []byte) (authzid, token string, err error) {
	m := string(msg)
	rest, ok := strings.CutPrefix(m, "n,")
	if !ok {
		return "", "", fmt.Errorf("GS2 header must start \"n,\"")
	}
	az, kvs, ok := strings.Cut(rest, ",")
	if !ok {
		return "", "", fmt.Errorf("GS2 header not terminated")
	}
	if az != "" {
		v, ok := strings.CutPrefix(az, "a=")
		if !ok {
			return "", "", fmt.Errorf("bad authzid %q", az)
		}
		if authzid, err = saslName(v); err != nil {
			return "", "", err
		}
	}
	body, ok := strings.CutPrefix(kvs, "\x01")
	if !ok || !strings.HasSuffix(body, "\x01\x01") {
		return "", "", fmt.Errorf("key-value pairs not framed by \\x01")
	}
	for _, kv := range strings.Split(strings.TrimSuffix(body, "\x01\x01"), "\x01") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return "", "", fmt.Errorf("bad key-value pair %q", kv)
		}
		if k != "auth" {
			continue // an extension
		}
		scheme, tok, ok := strings.Cut(v, " ")
		tok = strings.TrimLeft(tok, " ")
		if !ok || !strings.EqualFold(scheme, "bearer") || tok == "" {
			return "", "", fmt.Errorf("auth value is not \"Bearer <token>\"")
		}
		token = tok
	}
	if token == "" {
		return "", "", fmt.Errorf("no auth key")
	}
	return authzid, token, nil
}

// validateUnsecured checks an unsecured JWS and returns its principal.
func (s *Server) validateUnsecured(token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", fmt.Errorf("token has %d dot-separated parts, want 3", len(parts))
	}
	if parts[2] != "" {
		return "", fmt.Errorf("unsecured token must have an empty signature")
	}
	var header struct {
		Alg *string `json:"alg"`
	}
	if err := decodeJWSPart(parts[0], &header); err != nil {
		return "", fmt.Errorf("header: %w", err)
	}
	if header.Alg == nil || *header.Alg != "none" {
		return "", fmt.Errorf("header alg must be \"none\"")
	}
	var claims map[string]any
	if err := decodeJWSPart(parts[1], &claims); err != nil {
		return "", fmt.Errorf("claims: %w", err)
	}
	sub, ok := claims["sub"].(string)
	if !ok || strings.TrimSpace(sub) == "" {
		return "", fmt.Errorf("required claim \"sub\" is missing or not a non-empty string")
	}
	exp, ok := claims["exp"].(float64)
	if !ok || math.IsNaN(exp) || math.IsInf(exp, 0) {
		return "", fmt.Errorf("required claim \"exp\" is missing or not a number")
	}
	if now := float64(s.cfg.Now().UnixMilli()) / 1000; exp <= now {
		return "", fmt.Errorf("token expired at %v (now %v)", exp, now)
	}
	if iat, ok := claims["iat"]; ok {
		if _, ok := iat.(float64); !ok {
			return "", fmt.Errorf("claim \"iat\" is not a number")
		}
	}
	return sub, nil
}

func decodeJWSPart(part string, v any) error {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(part, "="))
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data after the JSON object")
	}
	return nil
}

// UnsecuredToken returns an unsecured JWS naming sub, expiring after ttl: what a client of
// Kafka's default OAUTHBEARER login module presents.
func UnsecuredToken(sub string, ttl time.Duration) string {
	enc := base64.RawURLEncoding.EncodeToString
	now := time.Now()
	claims, _ := json.Marshal(map[string]any{"sub": sub, "iat": now.Unix(), "exp": now.Add(ttl).Unix()})
	return enc([]byte(`{"alg":"none"}`)) + "." + enc(claims) + "."
}
