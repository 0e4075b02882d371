package clientsec

import (
	"maps"
	"slices"
	"strings"
	"testing"
)

// FuzzParseJAAS: the sasl.jaas.config parser never panics, and what it
// accepts survives being written back with every value quoted.
func FuzzParseJAAS(f *testing.F) {
	f.Add(`org.apache.kafka.common.security.scram.ScramLoginModule required username="a" password='b\'c';`)
	f.Add(`M optional /* c */ k=v // d` + "\n;")
	f.Add(`M required k="unterminated;`)
	f.Fuzz(func(t *testing.T, text string) {
		mod, opts, err := parseJAAS(text)
		if err != nil {
			return
		}
		if mod == "" {
			t.Fatalf("parseJAAS(%q) accepted an empty module", text)
		}
		var b strings.Builder
		b.WriteString(mod + " required")
		for _, k := range slices.Sorted(maps.Keys(opts)) {
			v := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(opts[k])
			b.WriteString(" " + k + `="` + v + `"`)
		}
		b.WriteString(";")
		mod2, opts2, err := parseJAAS(b.String())
		if err != nil || mod2 != mod || !maps.Equal(opts, opts2) {
			t.Fatalf("parseJAAS(%q) = %s %q, but its rewriting %q gives %s %q, %v", text, mod, opts, b.String(), mod2, opts2, err)
		}
	})
}

// FuzzParseProperties: the properties reader never panics.
func FuzzParseProperties(f *testing.F) {
	f.Add("a=1\nb : 2\\\n  3\n# c\nd\\u0041=\\t\n")
	f.Add("k=\\u12")
	f.Fuzz(func(t *testing.T, text string) {
		_, _ = parseProperties(strings.NewReader(text))
	})
}
