package server

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
)

// maxSendfile is the most one sendfile(2) call is asked to send (Linux sends at most
// 0x7ffff000 bytes per call anyway).
const maxSendfile = 1 << 30

// sendfile sends n bytes of f from offset off to c with sendfile(2), passing the offset
// explicitly so that f's file position does not move. It returns the bytes sent. An error
// wrapping errors.ErrUnsupported means the rest must be sent another way: c is not a socket of
// this process, or the kernel refuses sendfile for this pair (ENOSYS, EINVAL).
func sendfile(c net.Conn, f *os.File, off, n int64) (int64, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, fmt.Errorf("server: sendfile to %T: %w", c, errors.ErrUnsupported)
	}
	dst, err := sc.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("server: sendfile: %w", err)
	}
	src, err := f.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("server: sendfile from %s: %w", f.Name(), err)
	}
	var (
		sent int64
		serr error
	)
	cerr := src.Control(func(sfd uintptr) {
		werr := dst.Write(func(dfd uintptr) bool {
			for n > 0 {
				m, err := syscall.Sendfile(int(dfd), int(sfd), &off, int(min(n, maxSendfile)))
				if m > 0 {
					sent += int64(m)
					n -= int64(m)
				}
				switch {
				case err == syscall.EINTR:
				case err == syscall.EAGAIN:
					return false // wait until the socket is writable, then go on
				case err == syscall.ENOSYS || err == syscall.EINVAL:
					serr = fmt.Errorf("server: sendfile from %s: %w: %w", f.Name(), errors.ErrUnsupported, err)
					return true
				case err != nil:
					serr = fmt.Errorf("server: sendfile from %s: %w", f.Name(), err)
					return true
				case m == 0:
					serr = fmt.Errorf("server: sendfile from %s at byte %d: %w", f.Name(), off, io.ErrUnexpectedEOF)
					return true
				}
			}
			return true
		})
		if serr == nil && werr != nil {
			serr = werr
		}
	})
	if serr == nil && cerr != nil {
		serr = fmt.Errorf("server: sendfile from %s: %w", f.Name(), cerr)
	}
	return sent, serr
}

// cork holds back (on) or flushes (off) partial TCP segments, so the small pieces of a
// zero-copy frame leave in full packets. It does nothing for connections without a socket.
func cork(c net.Conn, on bool) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	v := 0
	if on {
		v = 1
	}
	_ = rc.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK, v)
	})
}
