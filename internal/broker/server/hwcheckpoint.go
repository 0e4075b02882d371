package server

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// hwCheckpointName is the file in the data dir that holds every replica's high watermark, as
// Kafka's replication-offset-checkpoint: a version line (0), a count line, then one
// "topic partition offset" line per replica.
const hwCheckpointName = "replication-offset-checkpoint"

// encodeHWCheckpoint renders hws in Kafka's OffsetCheckpointFile format, sorted.
func encodeHWCheckpoint(hws map[tp]int64) []byte {
	keys := slices.SortedFunc(maps.Keys(hws), func(a, b tp) int {
		if c := strings.Compare(a.topic, b.topic); c != 0 {
			return c
		}
		return int(a.partition) - int(b.partition)
	})
	var b bytes.Buffer
	fmt.Fprintf(&b, "0\n%d\n", len(keys))
	for _, k := range keys {
		fmt.Fprintf(&b, "%s %d %d\n", k.topic, k.partition, hws[k])
	}
	return b.Bytes()
}

// readHWCheckpoint reads the checkpoint at path; a missing file is an empty checkpoint.
func readHWCheckpoint(path string) (map[tp]int64, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[tp]int64{}, nil
	}
	if err != nil {
		return map[tp]int64{}, err
	}
	hws, err := decodeHWCheckpoint(data)
	if err != nil {
		return map[tp]int64{}, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return hws, nil
}

func decodeHWCheckpoint(data []byte) (map[tp]int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) < 2 || lines[0] != "0" {
		return nil, errors.New("not a version 0 offset checkpoint")
	}
	n, err := strconv.Atoi(lines[1])
	if err != nil || n != len(lines)-2 {
		return nil, fmt.Errorf("entry count %q does not match %d entries", lines[1], len(lines)-2)
	}
	hws := make(map[tp]int64, n)
	for i, l := range lines[2:] {
		f := strings.Fields(l)
		if len(f) != 3 {
			return nil, fmt.Errorf("entry %d: %q", i, l)
		}
		p, err1 := strconv.ParseInt(f[1], 10, 32)
		off, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil || p < 0 || off < 0 {
			return nil, fmt.Errorf("entry %d: %q", i, l)
		}
		hws[tp{f[0], int32(p)}] = off
	}
	return hws, nil
}

// checkpointHWs writes the high-watermark checkpoint; the broker calls it every
// HWCheckpointInterval.
func (b *Broker) checkpointHWs() {
	if b.image.Load() == nil {
		return // no replica is open yet: writing now would drop the checkpointed ones
	}
	b.mu.RLock()
	err := b.checkpointHWsLocked()
	b.mu.RUnlock()
	if err != nil {
		b.lg.Warn("cannot write the high-watermark checkpoint", "err", err)
	}
}

// checkpointHWsLocked writes every replica's high watermark to the checkpoint (atomically, by
// a fsynced temporary file renamed over it) when they changed since the last write. The caller
// holds b.mu (read or write).
func (b *Broker) checkpointHWsLocked() error {
	hws := make(map[tp]int64, len(b.replicas))
	for k, r := range b.replicas {
		hws[k] = r.HighWatermark()
	}
	b.checkpointMu.Lock()
	defer b.checkpointMu.Unlock()
	if b.lastHWs != nil && maps.Equal(hws, b.lastHWs) {
		return nil
	}
	if err := b.cfg.Disk.WriteFileAtomic(filepath.Join(b.cfg.DataDir, hwCheckpointName), encodeHWCheckpoint(hws)); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	b.lastHWs = hws
	return nil
}
