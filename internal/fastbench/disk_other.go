//go:build !linux

package fastbench

import "os"

// openDirect opens path for writing; O_DIRECT is only used on Linux.
func openDirect(path string) (f *os.File, direct bool, why string, err error) {
	f, err = os.OpenFile(path, os.O_WRONLY, 0)
	return f, false, "not used on this OS", err
}

func alignedBlock() (b []byte, free func()) { return make([]byte, blockSize), func() {} }
