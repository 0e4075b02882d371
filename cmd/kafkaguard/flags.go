package main

import (
	"errors"
	"flag"
	"io"
	"log/slog"
)

// parseFlags parses a command's flags. done reports that the command must return code now: 0
// after -h/--help (the usage was printed), 2 after a bad flag (flag printed the error and usage).
func parseFlags(fs *flag.FlagSet, args []string) (code int, done bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, true
		}
		return 2, true
	}
	return 0, false
}

// logFlag adds --log-level (debug, info, warn or error; a bad value is a usage error) and returns
// a constructor for the command's logger, which writes text lines to w.
func logFlag(fs *flag.FlagSet) func(w io.Writer) *slog.Logger {
	level := new(slog.Level)
	fs.TextVar(level, "log-level", slog.LevelInfo, "debug, info, warn or error")
	return func(w io.Writer) *slog.Logger {
		return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: *level}))
	}
}
