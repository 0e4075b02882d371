package fastbench

import (
	"os"
	"syscall"
)

// openDirect opens path for writing with O_DIRECT, or without it when the file system refuses
// it (tmpfs does), saying why.
func openDirect(path string) (f *os.File, direct bool, why string, err error) {
	f, err = os.OpenFile(path, os.O_WRONLY|syscall.O_DIRECT, 0)
	if err == nil {
		return f, true, "", nil
	}
	why = "refused: " + err.Error()
	f, err = os.OpenFile(path, os.O_WRONLY, 0)
	return f, false, why, err
}

// alignedBlock returns a blockSize buffer aligned to the page size, as O_DIRECT requires, and
// the function that frees it.
func alignedBlock() (b []byte, free func()) {
	b, err := syscall.Mmap(-1, 0, blockSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return make([]byte, blockSize), func() {} // only O_DIRECT writes would fail, with EINVAL
	}
	return b, func() { _ = syscall.Munmap(b) }
}
