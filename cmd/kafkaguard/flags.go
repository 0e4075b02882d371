package main

import (
	"errors"
	"flag"
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
