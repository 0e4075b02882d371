package fastbench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"
)

// blockSize is the size of each disk write.
const blockSize = 4096

// DiskWrites compares writing a file of size bytes in 4 KiB blocks in order with writing the same
// blocks in a random order, each pass ending with an fsync that the time includes, for at most
// about d per side. The file is written in full and fsynced first, so neither side allocates
// blocks. Writes use O_DIRECT when the file system allows it, so each block reaches the device
// rather than the page cache, where the kernel would sort random writes into sequential ones
// before they reach the disk; the row's note says which was used.
func DiskWrites(ctx context.Context, dir string, size int64, d time.Duration, progress func(string)) (Row, error) {
	blocks := int(size / blockSize)
	if blocks < 2 {
		return Row{}, fmt.Errorf("fastbench: disk file of %d bytes is under two blocks", size)
	}
	path := filepath.Join(dir, "disk-writes")
	defer os.Remove(path)
	progress(fmt.Sprintf("disk: writing a %s file", sizeText(size)))
	if err := preallocate(path, size); err != nil {
		return Row{}, err
	}
	f, direct, why, err := openDirect(path)
	if err != nil {
		return Row{}, fmt.Errorf("fastbench: %w", err)
	}
	defer f.Close()
	block, free := alignedBlock()
	defer free()
	for i := range block {
		block[i] = byte(i*7 + 1)
	}
	order := make([]int, blocks)
	for i := range order {
		order[i] = i
	}
	pass := func(name string) (Side, error) {
		progress("disk: " + name + " 4 KiB writes")
		start := time.Now()
		var written int64
		for i, b := range order {
			if _, err := f.WriteAt(block, int64(b)*blockSize); err != nil {
				return Side{}, fmt.Errorf("fastbench: disk write: %w", err)
			}
			written += blockSize
			if i%64 == 63 && (time.Since(start) >= d || ctx.Err() != nil) {
				break
			}
		}
		if err := f.Sync(); err != nil {
			return Side{}, fmt.Errorf("fastbench: fsync: %w", err)
		}
		return Side{Name: name, Value: mbps(written, time.Since(start)), Unit: "MB/s"}, nil
	}
	seq, err := pass("sequential")
	if err != nil {
		return Row{}, err
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	rnd, err := pass("random")
	if err != nil {
		return Row{}, err
	}
	mode := "O_DIRECT"
	if !direct {
		mode = "buffered (O_DIRECT " + why + ")"
	}
	note := fmt.Sprintf("%s, %s file, fsync at the end of each pass", mode, sizeText(size))
	return rateRow("disk: sequential beats random 4 KiB writes", seq, rnd, note), nil
}

// preallocate writes size bytes to path and fsyncs it.
func preallocate(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("fastbench: %w", err)
	}
	chunk := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(chunk)) {
		if _, err := f.Write(chunk[:min(int64(len(chunk)), size-off)]); err != nil {
			f.Close()
			return fmt.Errorf("fastbench: %w", err)
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fastbench: %w", err)
	}
	return f.Close()
}
