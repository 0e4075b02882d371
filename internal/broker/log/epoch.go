package log

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// epochEntry says that leader epoch Epoch started at StartOffset.
type epochEntry struct {
	Epoch       int32
	StartOffset int64
}

// The functions below treat an []epochEntry as immutable: they return a new
// slice when they change something, so readers may keep an old one.

// assignEpoch records that epoch starts at offset, if epoch is newer than
// the latest known one. It reports whether entries changed.
func assignEpoch(entries []epochEntry, epoch int32, offset int64) ([]epochEntry, bool) {
	if epoch < 0 || (len(entries) > 0 && epoch <= entries[len(entries)-1].Epoch) {
		return entries, false
	}
	out := slices.Clip(entries)
	return append(out, epochEntry{Epoch: epoch, StartOffset: offset}), true
}

// truncateEpochsFromEnd drops the epochs that start at or after end (as
// Kafka's LeaderEpochFileCache.truncateFromEnd).
func truncateEpochsFromEnd(entries []epochEntry, end int64) ([]epochEntry, bool) {
	n := len(entries)
	for n > 0 && entries[n-1].StartOffset >= end {
		n--
	}
	if n == len(entries) {
		return entries, false
	}
	return slices.Clone(entries[:n]), true
}

// truncateEpochsFromStart drops the epochs that end at or before start and
// moves the start of the epoch containing start up to start (as Kafka's
// LeaderEpochFileCache.truncateFromStart).
func truncateEpochsFromStart(entries []epochEntry, start int64) ([]epochEntry, bool) {
	i := 0 // entries[:i] start at or before start
	for i < len(entries) && entries[i].StartOffset <= start {
		i++
	}
	if i == 0 || (i == 1 && entries[0].StartOffset == start) {
		return entries, false
	}
	out := slices.Clone(entries[i-1:])
	out[0].StartOffset = start
	return out, true
}

// epochEndOffset implements Log.EpochEndOffset on entries.
func epochEndOffset(entries []epochEntry, epoch int32, end int64) (int32, int64) {
	i, found := slices.BinarySearchFunc(entries, epoch, func(e epochEntry, t int32) int {
		return cmp.Compare(e.Epoch, t)
	})
	if !found {
		i-- // the largest epoch below the requested one
	}
	if i < 0 {
		return -1, -1
	}
	if i == len(entries)-1 {
		return entries[i].Epoch, end
	}
	return entries[i].Epoch, entries[i+1].StartOffset
}

// checkEpochs reports why entries are not a valid cache, or "".
func checkEpochs(entries []epochEntry) string {
	for i, e := range entries {
		if e.Epoch < 0 || e.StartOffset < 0 {
			return fmt.Sprintf("entry %d: negative epoch or offset", i)
		}
		if i > 0 && (e.Epoch <= entries[i-1].Epoch || e.StartOffset <= entries[i-1].StartOffset) {
			return fmt.Sprintf("entry %d does not follow entry %d", i, i-1)
		}
	}
	return ""
}

const checkpointVersion = 0

// encodeEpochs renders entries in Kafka's checkpoint text format.
func encodeEpochs(entries []epochEntry) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%d\n%d\n", checkpointVersion, len(entries))
	for _, e := range entries {
		fmt.Fprintf(&b, "%d %d\n", e.Epoch, e.StartOffset)
	}
	return b.Bytes()
}

// decodeEpochs parses a checkpoint file written by encodeEpochs.
func decodeEpochs(data []byte) ([]epochEntry, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	line := func() (string, bool) {
		if !sc.Scan() {
			return "", false
		}
		return sc.Text(), true
	}
	v, ok := line()
	if !ok || v != strconv.Itoa(checkpointVersion) {
		return nil, fmt.Errorf("log: epoch checkpoint: unsupported version %q", v)
	}
	c, _ := line()
	n, err := strconv.Atoi(c)
	if err != nil || n < 0 || n > len(data) {
		return nil, fmt.Errorf("log: epoch checkpoint: bad entry count %q", c)
	}
	entries := make([]epochEntry, 0, n)
	for i := range n {
		l, ok := line()
		epoch, offset, ok2 := strings.Cut(l, " ")
		e, err1 := strconv.ParseInt(epoch, 10, 32)
		o, err2 := strconv.ParseInt(offset, 10, 64)
		if !ok || !ok2 || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("log: epoch checkpoint: bad entry %d: %q", i, l)
		}
		entries = append(entries, epochEntry{Epoch: int32(e), StartOffset: o})
	}
	if l, ok := line(); ok {
		return nil, fmt.Errorf("log: epoch checkpoint: trailing line %q", l)
	}
	if reason := checkEpochs(entries); reason != "" {
		return nil, fmt.Errorf("log: epoch checkpoint: %s", reason)
	}
	return entries, nil
}

func readEpochCheckpoint(dir string) ([]epochEntry, error) {
	data, err := os.ReadFile(filepath.Join(dir, checkpointName))
	if err != nil {
		return nil, err
	}
	return decodeEpochs(data)
}

func (d *Disk) writeEpochCheckpoint(dir string, entries []epochEntry) error {
	return d.WriteFileAtomic(filepath.Join(dir, checkpointName), encodeEpochs(entries))
}
