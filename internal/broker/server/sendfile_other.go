//go:build !linux

package server

import (
	"errors"
	"net"
	"os"
)

// sendfile is not used outside Linux: the caller falls back to pread and write.
func sendfile(net.Conn, *os.File, int64, int64) (int64, error) { return 0, errors.ErrUnsupported }

// cork does nothing outside Linux.
func cork(net.Conn, bool) {}
