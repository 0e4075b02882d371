package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// bound is the set of values a numeric flag accepts.
type bound[T cmp.Ordered] struct {
	ok   func(T) bool
	want string // completes "--flag must be ...", e.g. "at least 1"
}

func atLeast[T cmp.Ordered](min T) bound[T] {
	return bound[T]{func(v T) bool { return v >= min }, fmt.Sprintf("at least %v", min)}
}

func positive[T cmp.Ordered]() bound[T] {
	var zero T
	return bound[T]{func(v T) bool { return v > zero }, "greater than 0"}
}

func between[T cmp.Ordered](min, max T) bound[T] {
	return bound[T]{func(v T) bool { return v >= min && v <= max }, fmt.Sprintf("between %v and %v", min, max)}
}

// kafkaMillis is the range of a Kafka setting in milliseconds (a Java int):
// 1ms to 2147483647ms.
var kafkaMillis = between(time.Millisecond, math.MaxInt32*time.Millisecond)

// rangeError is a flag value that parsed but is out of the flag's bound.
type rangeError struct {
	flag, want, got string
}

func (e *rangeError) Error() string {
	return fmt.Sprintf("--%s must be %s, got %s", e.flag, e.want, e.got)
}

// boundedValue is a pflag.Value that refuses values outside its bound, so a
// bad value is a usage error naming the flag rather than silently replaced
// later by a default.
type boundedValue[T cmp.Ordered] struct {
	name  string
	p     *T
	b     bound[T]
	parse func(string) (T, error)
	typ   string
}

func (v *boundedValue[T]) String() string { return fmt.Sprint(*v.p) }
func (v *boundedValue[T]) Type() string   { return v.typ }

func (v *boundedValue[T]) Set(s string) error {
	x, err := v.parse(s)
	if err != nil {
		return err
	}
	if !v.b.ok(x) {
		return &rangeError{flag: v.name, want: v.b.want, got: s}
	}
	*v.p = x
	return nil
}

// boundedFlag defines a flag of type T with default def, accepting only
// values in b; the bound is appended to the usage.
func boundedFlag[T cmp.Ordered](fs *pflag.FlagSet, name string, def T, b bound[T], typ string, parse func(string) (T, error), usage string) *T {
	if !b.ok(def) {
		panic(fmt.Sprintf("kafkaguard: default %v of --%s is outside its bound (%s)", def, name, b.want))
	}
	p := new(T)
	*p = def
	fs.Var(&boundedValue[T]{name: name, p: p, b: b, parse: parse, typ: typ}, name, usage+" ("+b.want+")")
	return p
}

func intFlag(fs *pflag.FlagSet, name string, def int, b bound[int], usage string) *int {
	return boundedFlag(fs, name, def, b, "int", parseInt, usage)
}

func durationFlag(fs *pflag.FlagSet, name string, def time.Duration, b bound[time.Duration], usage string) *time.Duration {
	return boundedFlag(fs, name, def, b, "duration", parseDuration, usage)
}

func floatFlag(fs *pflag.FlagSet, name string, def float64, b bound[float64], usage string) *float64 {
	return boundedFlag(fs, name, def, b, "float", parseFloat, usage)
}

func parseInt(s string) (int, error) {
	v, err := strconv.ParseInt(s, 0, strconv.IntSize)
	if errors.Is(err, strconv.ErrRange) {
		return 0, errors.New("out of range")
	}
	if err != nil {
		return 0, errors.New("not an integer")
	}
	return int(v), nil
}

func parseDuration(s string) (time.Duration, error) {
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New("not a duration such as 500ms, 10s or 2m")
	}
	return v, nil
}

func parseFloat(s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) {
		return 0, errors.New("not a number")
	}
	return v, nil
}

// logFlag adds --log-level (debug, info, warn or error; a bad value is a usage error) and
// --log-format (text or json) and returns a constructor for the command's logger, which writes to w.
func logFlag(fs *pflag.FlagSet) func(w io.Writer) *slog.Logger {
	level := new(slog.Level)
	fs.TextVar(level, "log-level", slog.LevelInfo, "debug, info, warn or error")
	format := new(logFormat)
	fs.TextVar(format, "log-format", logFormat("text"), "text (logfmt lines) or json (one JSON object a line)")
	return func(w io.Writer) *slog.Logger {
		opts := &slog.HandlerOptions{Level: *level}
		if *format == "json" {
			return slog.New(slog.NewJSONHandler(w, opts))
		}
		return slog.New(slog.NewTextHandler(w, opts))
	}
}

// logFormat is the value of --log-format: text or json.
type logFormat string

// MarshalText returns the format's name.
func (f logFormat) MarshalText() ([]byte, error) { return []byte(f), nil }

// UnmarshalText accepts text or json.
func (f *logFormat) UnmarshalText(b []byte) error {
	switch s := string(b); s {
	case "text", "json":
		*f = logFormat(s)
		return nil
	}
	return errors.New("want text or json")
}

// flagError turns pflag's parse errors into usage errors that name the flag
// as --flag, in the words of Go's flag package that the commands used
// before.
func flagError(_ *cobra.Command, err error) error {
	var rng *rangeError
	var invalid *pflag.InvalidValueError
	var notExist *pflag.NotExistError
	switch {
	case errors.As(err, &rng):
		return &exitError{code: 2, err: rng}
	case errors.As(err, &invalid):
		return usageErrorf("invalid value %q for flag --%s: %w", invalid.GetValue(), invalid.GetFlag().Name, errors.Unwrap(invalid))
	case errors.As(err, &notExist) && notExist.GetSpecifiedShortnames() != "":
		return usageErrorf("flag provided but not defined: -%s", notExist.GetSpecifiedShortnames())
	case errors.As(err, &notExist):
		return usageErrorf("flag provided but not defined: --%s", notExist.GetSpecifiedName())
	}
	return &exitError{code: 2, err: err}
}

// compatArgs rewrites the single-dash long flags that Go's flag package
// accepted (-records 5, -json=false) to their double-dash form for the
// command that args run, so that scripts written for earlier versions keep
// working. Only names the command defines are rewritten, never a flag's
// value or anything after "--"; single-letter flags stay shorthands (-h, -v).
func compatArgs(root *cobra.Command, args []string) []string {
	cmd, _, err := root.Find(args)
	if err != nil || cmd == nil {
		return args
	}
	fs := cmd.Flags()
	out := make([]string, len(args))
	copy(out, args)
	for i := 0; i < len(out); i++ {
		a := out[i]
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") || len(a) < 2 {
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		dashes := len(a) - len(strings.TrimLeft(a, "-"))
		if dashes == 1 && len(name) < 2 {
			continue // a shorthand such as -h or -v
		}
		f := fs.Lookup(name)
		if f == nil || dashes > 2 {
			continue
		}
		if dashes == 1 {
			out[i] = "-" + a
		}
		if !hasValue && f.NoOptDefVal == "" {
			i++ // the next argument is this flag's value, whatever it looks like
		}
	}
	return out
}
