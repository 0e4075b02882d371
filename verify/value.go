package verify

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrBadValue is returned by [ParseValue] for text that is not a workload
// value.
var ErrBadValue = errors.New("verify: not a workload value")

// Value identifies one workload record: its key number and its sequence
// number within that key, both from 0. Its text form, the record value on
// the wire, is "k<key>:<seq>", such as "k3:17"; the record key is
// "k<key>".
type Value struct {
	Key int `json:"key"`
	Seq int `json:"seq"`
}

// String returns the value's text form, "k<key>:<seq>".
func (v Value) String() string { return "k" + strconv.Itoa(v.Key) + ":" + strconv.Itoa(v.Seq) }

// RecordKey returns the record key the value is produced with, "k<key>".
func (v Value) RecordKey() string { return "k" + strconv.Itoa(v.Key) }

// MarshalText implements encoding.TextMarshaler.
func (v Value) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (v *Value) UnmarshalText(text []byte) error {
	p, err := ParseValue(text)
	if err != nil {
		return err
	}
	*v = p
	return nil
}

// ParseValue parses a record value written by the workload. It returns an
// error matching [ErrBadValue] for anything else.
func ParseValue(b []byte) (Value, error) {
	s := string(b)
	bad := func() (Value, error) {
		q := s
		if len(q) > 40 {
			q = q[:40] + "..."
		}
		return Value{}, fmt.Errorf("%w: %q (want k<key>:<seq>)", ErrBadValue, q)
	}
	rest, ok := strings.CutPrefix(s, "k")
	if !ok {
		return bad()
	}
	k, q, ok := strings.Cut(rest, ":")
	if !ok {
		return bad()
	}
	key, err1 := parseNonNegative(k)
	seq, err2 := parseNonNegative(q)
	if err1 != nil || err2 != nil {
		return bad()
	}
	return Value{Key: key, Seq: seq}, nil
}

// parseNonNegative accepts only plain decimal digits, so that every value
// has exactly one text form.
func parseNonNegative(s string) (int, error) {
	if s == "" || len(s) > 9 || (len(s) > 1 && s[0] == '0') {
		return 0, ErrBadValue
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, ErrBadValue
		}
	}
	return strconv.Atoi(s)
}

// Workload returns the values of a workload of n records over keys keys,
// in the order they are produced: round robin over the keys, so that key
// k's sequence numbers rise by one per round. It returns nil if n or keys
// is not positive.
func Workload(n, keys int) []Value {
	if n <= 0 || keys <= 0 {
		return nil
	}
	out := make([]Value, n)
	for i := range out {
		out[i] = Value{Key: i % keys, Seq: i / keys}
	}
	return out
}
