package clientsec

import (
	"errors"
	"fmt"
	"strings"
)

// parseJAAS parses a sasl.jaas.config value: exactly one login module
// entry, "ModuleClass flag key=value ... ;", where the flag is required,
// requisite, sufficient or optional and a value is a word or a string in
// double or single quotes with backslash escapes. Java comments (// and
// /* */) are skipped. It returns the module class and its options.
func parseJAAS(text string) (string, map[string]string, error) {
	toks, err := jaasTokens(text)
	if err != nil {
		return "", nil, err
	}
	if len(toks) == 0 {
		return "", nil, errors.New("empty JAAS configuration")
	}
	next := func() (jaasToken, bool) {
		if len(toks) == 0 {
			return jaasToken{}, false
		}
		t := toks[0]
		toks = toks[1:]
		return t, true
	}
	mod, _ := next()
	if mod.kind != tokWord {
		return "", nil, fmt.Errorf("JAAS configuration must start with a login module class, got %q", mod.text)
	}
	flag, ok := next()
	switch {
	case !ok || flag.kind != tokWord:
		return "", nil, fmt.Errorf("login module %s needs a control flag (required, requisite, sufficient or optional)", mod.text)
	case flag.text != "required" && flag.text != "requisite" && flag.text != "sufficient" && flag.text != "optional":
		return "", nil, fmt.Errorf("login module %s: control flag %q is not required, requisite, sufficient or optional", mod.text, flag.text)
	}
	opts := map[string]string{}
	for {
		t, ok := next()
		if !ok {
			return "", nil, fmt.Errorf("login module %s: the entry must end with ';'", mod.text)
		}
		if t.kind == tokSemi {
			break
		}
		if t.kind != tokWord {
			return "", nil, fmt.Errorf("login module %s: expected an option name, got %q", mod.text, t.text)
		}
		eq, ok := next()
		if !ok || eq.kind != tokEq {
			return "", nil, fmt.Errorf("login module %s: option %s needs '=' and a value", mod.text, t.text)
		}
		v, ok := next()
		if !ok || (v.kind != tokWord && v.kind != tokQuoted) {
			return "", nil, fmt.Errorf("login module %s: option %s needs a value", mod.text, t.text)
		}
		if _, dup := opts[t.text]; dup {
			return "", nil, fmt.Errorf("login module %s: option %s given twice", mod.text, t.text)
		}
		opts[t.text] = v.text
	}
	if len(toks) > 0 {
		return "", nil, errors.New("a client's JAAS configuration must hold exactly one login module")
	}
	return mod.text, opts, nil
}

type tokKind int

const (
	tokWord tokKind = iota
	tokQuoted
	tokEq
	tokSemi
)

type jaasToken struct {
	kind tokKind
	text string
}

func jaasTokens(s string) ([]jaasToken, error) {
	var out []jaasToken
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			i++
		case strings.HasPrefix(s[i:], "//"):
			end := strings.IndexByte(s[i:], '\n')
			if end < 0 {
				end = len(s) - i
			}
			i += end
		case strings.HasPrefix(s[i:], "/*"):
			end := strings.Index(s[i+2:], "*/")
			if end < 0 {
				return nil, errors.New("unterminated /* comment")
			}
			i += 2 + end + 2
		case c == '=':
			out = append(out, jaasToken{tokEq, "="})
			i++
		case c == ';':
			out = append(out, jaasToken{tokSemi, ";"})
			i++
		case c == '"' || c == '\'':
			var b strings.Builder
			j := i + 1
			for ; j < len(s) && s[j] != c; j++ {
				if s[j] == '\\' && j+1 < len(s) {
					j++
				}
				b.WriteByte(s[j])
			}
			if j == len(s) {
				return nil, fmt.Errorf("unterminated quoted value starting at byte %d", i)
			}
			out = append(out, jaasToken{tokQuoted, b.String()})
			i = j + 1
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\n\r\f=;\"'", rune(s[j])) {
				j++
			}
			out = append(out, jaasToken{tokWord, s[i:j]})
			i = j
		}
	}
	return out, nil
}
