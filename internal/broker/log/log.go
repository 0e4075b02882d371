package log

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"
)

// A Log is the on-disk log of one partition replica: a directory of
// segment files holding Kafka v2 record batches, with a sparse offset index
// per segment and a leader-epoch cache.
//
// A Log is safe for concurrent use. Writers (appends, Truncate,
// ApplyRetention, Sync, Close) are serialised on one mutex and do their
// file I/O holding only it; they take the read-write lock that readers
// share only for the moment it takes to publish new sizes and offsets.
// Readers (Read, ReadSlices, Scan, OffsetForTimestamp) hold the read lock
// only to pin the segments they need, and then read the files with pread,
// so they never wait behind a write or an fsync.
type Log struct {
	dir    string
	cfg    Config
	disk   *Disk // cfg.Disk
	logger *slog.Logger

	// appendMu serialises every change to the log. The fields below it are
	// owned by its holder.
	appendMu sync.Mutex
	// failed is set when an I/O error left the files in a state the log
	// could not roll back; all later writes fail.
	failed error
	// epochsDirty says the checkpoint file lags l.epochs (a write failed).
	epochsDirty bool
	// unflushed counts the messages appended since the last fsync (for
	// Config.FlushMessages).
	unflushed int64
	// afterDiskStep, when set (by tests), is called after each change on
	// disk of a multi-step operation, where a crash could stop it.
	afterDiskStep func()

	// mu guards the published state below. It is write-locked only by the
	// holder of appendMu, and only to publish; the appendMu holder may read
	// these fields without mu.
	mu     sync.RWMutex
	segs   []*segment // ascending base offset; the last is the active segment
	start  int64
	end    int64
	epochs []epochEntry // treated as immutable; replaced on change
	closed bool

	hdrBufs sync.Pool // *[]byte chunks of the readers' headerReaders
}

// Open opens the log in dir, creating dir if needed, and recovers it as the
// package documentation describes. A nil logger discards log output.
func Open(dir string, cfg Config, logger *slog.Logger) (*Log, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := makeDir(dir, cfg.Disk); err != nil {
		return nil, fmt.Errorf("log: %w", err)
	}
	l := &Log{dir: dir, cfg: cfg, disk: cfg.Disk, logger: logger.With(slog.String("log", dir))}
	if err := l.recover(); err != nil {
		for _, s := range l.segs {
			s.unpin()
		}
		return nil, err
	}
	return l, nil
}

// makeDir creates dir if it does not exist, and then fsyncs its parent so
// that the new directory survives a power loss.
func makeDir(dir string, d *Disk) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return d.syncDir(filepath.Dir(filepath.Clean(dir)))
}

// SetFlushMessages changes Config.FlushMessages (a topic config change);
// n <= 0 means never. SyncEveryAppend, if set, still wins.
func (l *Log) SetFlushMessages(n int64) {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if n <= 0 {
		n = math.MaxInt64
	}
	if !l.cfg.SyncEveryAppend {
		l.cfg.FlushMessages = n
	}
}

// Dir returns the log's directory.
func (l *Log) Dir() string { return l.dir }

// StartOffset returns the log start offset: the first offset still in the
// log.
func (l *Log) StartOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.start
}

// EndOffset returns the log end offset (LEO): the offset the next appended
// record will get. The log holds offsets [StartOffset(), EndOffset()).
func (l *Log) EndOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.end
}

// Size returns the bytes of record batches on disk, the sum of the segment
// files' sizes (as Kafka's Log.size; index files are not counted).
func (l *Log) Size() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var n int64
	for _, s := range l.segs {
		n += s.st.size
	}
	return n
}

// LatestEpoch returns the latest leader epoch in the log, or -1 when the
// log holds no batch stamped with an epoch.
func (l *Log) LatestEpoch() int32 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if len(l.epochs) == 0 {
		return -1
	}
	return l.epochs[len(l.epochs)-1].Epoch
}

// EpochEndOffset answers OffsetForLeaderEpoch: it returns the largest epoch
// <= epoch known in this log and the end offset of that epoch, which is the
// start offset of the next larger epoch, or EndOffset() if it is the latest.
// It returns (-1, -1) when epoch is older than every epoch in the log (or
// the log has none).
//
// Apache Kafka's LeaderEpochFileCache.endOffsetFor differs in two corner
// cases: for an epoch newer than the latest it answers (-1, -1), where this
// answers (latest, EndOffset()); for an epoch older than the first known
// one (say, after retention trimmed the cache) it answers (epoch, start
// offset of the first known epoch), where this answers (-1, -1).
func (l *Log) EpochEndOffset(epoch int32) (foundEpoch int32, endOffset int64) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return epochEndOffset(l.epochs, epoch, l.end)
}

// FirstEpoch returns the oldest leader epoch in the log and the offset it
// starts at, or (-1, -1) when the log holds no batch stamped with an epoch.
func (l *Log) FirstEpoch() (epoch int32, startOffset int64) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if len(l.epochs) == 0 {
		return -1, -1
	}
	return l.epochs[0].Epoch, l.epochs[0].StartOffset
}

// Sync flushes the active segment (and the directory) to stable storage.
// Closed segments were flushed when they were rolled.
func (l *Log) Sync() error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if l.closed {
		return ErrClosed
	}
	return l.syncLocked()
}

func (l *Log) syncLocked() error {
	active := l.segs[len(l.segs)-1]
	err := errors.Join(l.disk.sync(active.f, active.path), l.disk.syncFileIfExists(txnIndexPath(active.path)), l.disk.syncDir(l.dir))
	if l.epochsDirty {
		err = errors.Join(err, l.writeEpochsLocked())
	}
	if err != nil {
		return fmt.Errorf("log: sync: %w", err)
	}
	l.unflushed = 0
	return nil
}

// Close flushes and closes the log. Files that ReadSlices callers still
// hold stay open until they are released. Closing a closed log does
// nothing; every other method then returns ErrClosed.
func (l *Log) Close() error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if l.closed {
		return nil
	}
	var err error
	if l.failed == nil {
		err = l.syncLocked()
	}
	l.releaseLocked()
	return err
}

// Abandon closes the log as a crash (kill -9) would: it drops the file
// handles without flushing or writing anything. What was written stays in
// the files (the OS keeps it, as it keeps a killed process's writes); what
// was never fsynced is what a power loss (Disk.PowerLoss) takes away.
// Abandoning a closed log does nothing; every other method then returns
// ErrClosed.
func (l *Log) Abandon() {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if !l.closed {
		l.releaseLocked()
	}
}

// releaseLocked marks the log closed and drops its references to the
// segment files; the caller holds appendMu.
func (l *Log) releaseLocked() {
	l.mu.Lock()
	l.closed = true
	segs := l.segs
	l.mu.Unlock()
	for _, s := range segs {
		s.unpin()
	}
}

// Delete closes the log and removes its directory.
func (l *Log) Delete() error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	l.mu.Lock()
	wasOpen := !l.closed
	l.closed = true
	segs := l.segs
	l.mu.Unlock()
	if wasOpen {
		for _, s := range segs {
			s.unpin()
		}
	}
	if err := os.RemoveAll(l.dir); err != nil {
		return fmt.Errorf("log: delete: %w", err)
	}
	return nil
}

// writeEpochsLocked writes the epoch checkpoint; the caller holds appendMu.
// A failure is logged and remembered, not returned to appenders: the
// checkpoint is derived data that Open can rebuild.
func (l *Log) writeEpochsLocked() error {
	if err := l.disk.writeEpochCheckpoint(l.dir, l.epochs); err != nil {
		l.epochsDirty = true
		l.logger.Warn("log: cannot write leader-epoch checkpoint", "err", err)
		return err
	}
	l.epochsDirty = false
	return nil
}

// segmentFor returns the index in segs of the segment that holds offset:
// the last one whose base offset is <= offset (0 if none).
func segmentFor(segs []*segment, offset int64) int {
	i := sort.Search(len(segs), func(i int) bool { return segs[i].base > offset })
	return max(i-1, 0)
}

// locate returns the position and header of the batch in seg (described
// by st) that contains offset, using the sparse index and then scanning
// forward. found is false when offset is at or past st.next.
func locate(seg *segment, st segState, hr *headerReader, offset int64) (pos int64, h BatchHeader, found bool, err error) {
	if offset >= st.next {
		return st.size, BatchHeader{}, false, nil
	}
	for pos = lookupOffset(st.index, seg.base, offset); pos < st.size; pos += int64(h.Size()) {
		if h, err = hr.at(pos, st.size); err != nil {
			return pos, h, false, err
		}
		if h.LastOffset() >= offset {
			return pos, h, true, nil
		}
	}
	return pos, h, false, seg.corruptAt(pos, fmt.Sprintf("offset %d below the segment end %d not found", offset, st.next))
}

// removeSegmentFiles deletes a segment's files; errors are logged.
func (l *Log) removeSegmentFiles(s *segment) {
	if err := errors.Join(l.disk.remove(s.path), l.disk.removeIndexFiles(s.path), l.disk.remove(txnIndexPath(s.path))); err != nil {
		l.logger.Warn("log: cannot remove segment files", "segment", filepath.Base(s.path), "err", err)
	}
	l.diskStep()
}

// diskStep marks a point where a crash may stop a multi-step change (see
// afterDiskStep).
func (l *Log) diskStep() {
	if l.afterDiskStep != nil {
		l.afterDiskStep()
	}
}
