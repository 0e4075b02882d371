package sasl

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"hash"
	"strconv"
	"strings"
)

// Kafka's bounds on SCRAM iterations (ScramMechanism.minIterations; the upper one is what
// AlterUserScramCredentials accepts).
const (
	MinIterations = 4096
	MaxIterations = 16384
)

// ScramCredential is what a server keeps of a SCRAM user (RFC 5802 section 3): never the
// password.
type ScramCredential struct {
	Salt       []byte `json:"salt"`
	StoredKey  []byte `json:"stored_key"`
	ServerKey  []byte `json:"server_key"`
	Iterations int32  `json:"iterations"`
}

// IsScram reports whether mechanism is SCRAM-SHA-256 or SCRAM-SHA-512.
func IsScram(mechanism string) bool { return mechanism == ScramSHA256 || mechanism == ScramSHA512 }

func scramHash(mechanism string) func() hash.Hash {
	if mechanism == ScramSHA512 {
		return sha512.New
	}
	return sha256.New
}

// NewSalt returns a new random salt.
func NewSalt() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return b
}

// SaltedPassword is SCRAM's Hi(password, salt, iterations): PBKDF2 with HMAC of the
// mechanism's hash, as Kafka's ScramFormatter.hi.
func SaltedPassword(mechanism string, password, salt []byte, iterations int) ([]byte, error) {
	if !IsScram(mechanism) {
		return nil, fmt.Errorf("%w: %q is not SCRAM", ErrUnsupportedMechanism, mechanism)
	}
	h := scramHash(mechanism)
	return pbkdf2.Key(h, string(password), salt, iterations, h().Size())
}

// CredentialFromSalted derives the credential kept for a salted password (AlterUserScram
// Credentials carries the salted password, never the password itself).
func CredentialFromSalted(mechanism string, salted, salt []byte, iterations int) ScramCredential {
	h := scramHash(mechanism)
	clientKey := hmacOf(h, salted, []byte("Client Key"))
	stored := h()
	stored.Write(clientKey)
	return ScramCredential{
		Salt:       append([]byte(nil), salt...),
		StoredKey:  stored.Sum(nil),
		ServerKey:  hmacOf(h, salted, []byte("Server Key")),
		Iterations: int32(iterations),
	}
}

// NewScramCredential derives the credential of password with a new random salt.
func NewScramCredential(mechanism, password string, iterations int) (ScramCredential, error) {
	if iterations < MinIterations || iterations > MaxIterations {
		return ScramCredential{}, fmt.Errorf("sasl: %d iterations: must be %d to %d", iterations, MinIterations, MaxIterations)
	}
	salt := NewSalt()
	salted, err := SaltedPassword(mechanism, []byte(password), salt, iterations)
	if err != nil {
		return ScramCredential{}, err
	}
	return CredentialFromSalted(mechanism, salted, salt, iterations), nil
}

func hmacOf(h func() hash.Hash, key, msg []byte) []byte {
	m := hmac.New(h, key)
	m.Write(msg)
	return m.Sum(nil)
}

// scramServer is the server side of one SCRAM exchange: client-first, then client-final.
type scramServer struct {
	s *Server
	e *Exchange
	h func() hash.Hash

	state       int // 0: expecting client-first; 1: expecting client-final
	gs2         string
	clientBare  string
	serverFirst string
	nonce       string
	cred        ScramCredential
	user        string
}

func (sc *scramServer) step(msg []byte) ([]byte, error) {
	mech := sc.e.mech
	switch sc.state {
	case 0:
		gs2, authzid, bare, user, cnonce, err := parseClientFirst(string(msg))
		if err != nil {
			return nil, fail(mech, "invalid client-first message: %v", err)
		}
		cred, ok := sc.s.cfg.Users.Scram(mech, user)
		if !ok {
			return nil, fail(mech, "Authentication failed: Invalid user credentials (no %s credential for %q)", mech, user)
		}
		if authzid != "" && authzid != user {
			return nil, failPublic(mech, "Authentication failed: Client requested an authorization id that is different from username")
		}
		if cred.Iterations < MinIterations {
			return nil, fail(mech, "Iterations %d is less than the minimum %d for %s", cred.Iterations, MinIterations, mech)
		}
		sc.gs2, sc.clientBare, sc.cred, sc.user = gs2, bare, cred, user
		sc.nonce = cnonce + sc.s.nonce()
		sc.serverFirst = "r=" + sc.nonce + ",s=" + base64.StdEncoding.EncodeToString(cred.Salt) + ",i=" + strconv.Itoa(int(cred.Iterations))
		sc.state = 1
		return []byte(sc.serverFirst), nil
	default:
		withoutProof, cbind, nonce, proof, err := parseClientFinal(string(msg))
		if err != nil {
			return nil, fail(mech, "invalid client-final message: %v", err)
		}
		if nonce != sc.nonce {
			return nil, fail(mech, "Invalid client nonce in the final client message.")
		}
		if cbind != base64.StdEncoding.EncodeToString([]byte(sc.gs2)) {
			return nil, fail(mech, "channel binding %q does not match the GS2 header %q", cbind, sc.gs2)
		}
		auth := []byte(sc.clientBare + "," + sc.serverFirst + "," + withoutProof)
		sig := hmacOf(sc.h, sc.cred.StoredKey, auth)
		if len(proof) != len(sig) {
			return nil, fail(mech, "Invalid client credentials (proof of %d bytes, want %d)", len(proof), len(sig))
		}
		clientKey := make([]byte, len(sig))
		for i := range sig {
			clientKey[i] = proof[i] ^ sig[i]
		}
		h := sc.h()
		h.Write(clientKey)
		if subtle.ConstantTimeCompare(h.Sum(nil), sc.cred.StoredKey) != 1 {
			return nil, fail(mech, "Invalid client credentials")
		}
		sc.e.succeed(sc.user)
		return []byte("v=" + base64.StdEncoding.EncodeToString(hmacOf(sc.h, sc.cred.ServerKey, auth))), nil
	}
}

// parseClientFirst parses "n,[a=authzid],n=user,r=nonce[,extensions]" (Kafka accepts no
// channel binding but "n").
func parseClientFirst(m string) (gs2, authzid, bare, user, nonce string, err error) {
	rest, ok := strings.CutPrefix(m, "n,")
	if !ok {
		return "", "", "", "", "", fmt.Errorf("GS2 header must start \"n,\" (no channel binding)")
	}
	az, bare, ok := strings.Cut(rest, ",")
	if !ok {
		return "", "", "", "", "", fmt.Errorf("no client-first-message-bare")
	}
	if az != "" {
		v, ok := strings.CutPrefix(az, "a=")
		if !ok {
			return "", "", "", "", "", fmt.Errorf("bad authzid %q", az)
		}
		if authzid, err = saslName(v); err != nil {
			return "", "", "", "", "", err
		}
	}
	gs2 = "n," + az + ","
	fields := strings.Split(bare, ",")
	if len(fields) < 2 {
		return "", "", "", "", "", fmt.Errorf("client-first-message-bare %q has no nonce", bare)
	}
	name, ok := strings.CutPrefix(fields[0], "n=")
	if !ok {
		return "", "", "", "", "", fmt.Errorf("no username in %q", bare)
	}
	if user, err = saslName(name); err != nil {
		return "", "", "", "", "", err
	}
	nonce, ok = strings.CutPrefix(fields[1], "r=")
	if !ok || !printable(nonce) {
		return "", "", "", "", "", fmt.Errorf("bad nonce in %q", bare)
	}
	for _, ext := range fields[2:] {
		if k, v, ok := strings.Cut(ext, "="); !ok || len(k) == 0 || v == "" {
			return "", "", "", "", "", fmt.Errorf("bad extension %q", ext)
		}
	}
	return gs2, authzid, bare, user, nonce, nil
}

// parseClientFinal parses "c=cbind,r=nonce[,extensions],p=proof".
func parseClientFinal(m string) (withoutProof, cbind, nonce string, proof []byte, err error) {
	i := strings.LastIndex(m, ",p=")
	if i < 0 {
		return "", "", "", nil, fmt.Errorf("no proof")
	}
	withoutProof = m[:i]
	if proof, err = base64.StdEncoding.DecodeString(m[i+3:]); err != nil {
		return "", "", "", nil, fmt.Errorf("proof: %v", err)
	}
	fields := strings.Split(withoutProof, ",")
	if len(fields) < 2 {
		return "", "", "", nil, fmt.Errorf("no nonce")
	}
	cbind, ok := strings.CutPrefix(fields[0], "c=")
	if !ok {
		return "", "", "", nil, fmt.Errorf("no channel binding")
	}
	if nonce, ok = strings.CutPrefix(fields[1], "r="); !ok {
		return "", "", "", nil, fmt.Errorf("no nonce")
	}
	return withoutProof, cbind, nonce, proof, nil
}

// saslName decodes a SCRAM saslname: "=2C" is ",", "=3D" is "=", and no other "=" or "," may
// appear (Kafka's ScramFormatter.username).
func saslName(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("empty name")
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '=':
			switch {
			case strings.HasPrefix(s[i:], "=2C"):
				b.WriteByte(',')
			case strings.HasPrefix(s[i:], "=3D"):
				b.WriteByte('=')
			default:
				return "", fmt.Errorf("bad escape in name %q", s)
			}
			i += 2
		case c == ',' || c == 0:
			return "", fmt.Errorf("bad character in name %q", s)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// printable reports whether s is a non-empty run of printable ASCII other than ",".
func printable(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e || s[i] == ',' {
			return false
		}
	}
	return true
}
