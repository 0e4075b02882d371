package log

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// A Disk records what of the files written through it is on stable storage, so that a power
// loss can be simulated honestly: PowerLoss cuts every file back to the bytes a successful fsync
// covered and removes the files whose creation no directory fsync made durable. Nothing is
// rewritten from memory; the files only lose what the disk would not have kept.
//
// Every file a Log creates, syncs, truncates, renames or removes goes through its Disk
// (Config.Disk), and so does the broker's high-watermark checkpoint. A file the Disk has never
// seen (it was there before) counts as wholly on stable storage. The model:
//
//   - a file's bytes are durable up to the length it had at its last successful fsync; a
//     truncation below that length lowers it;
//   - a created or renamed-to name is durable once its directory was fsynced afterwards;
//   - a removal is durable at once (the log fsyncs the directory after the removals that
//     matter; a removal undone by a power loss cannot be modelled without keeping old data).
//
// A nil *Disk records nothing: its methods do the file operations only. A Disk is safe for
// concurrent use; it may outlive the logs that use it (a broker's Disk survives its restarts).
type Disk struct {
	mu         sync.Mutex
	files      map[string]*diskFile
	beforeSync func(path string) // see SetBeforeSync; guarded by mu
}

// diskFile is what a Disk knows of one file.
type diskFile struct {
	synced  int64 // bytes known to be on stable storage: the size at the last successful fsync
	durable bool  // the directory entry is on stable storage
}

// NewDisk returns a Disk that has seen no file yet.
func NewDisk() *Disk { return &Disk{files: map[string]*diskFile{}} }

// record runs fn on the state of path (created when absent), if d tracks anything.
func (d *Disk) record(path string, fn func(f *diskFile)) {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	path = filepath.Clean(path)
	f := d.files[path]
	if f == nil {
		f = &diskFile{synced: -1, durable: true} // a file from before: all of it counts as durable
		d.files[path] = f
	}
	fn(f)
}

// create opens path with os.O_CREATE|flag and records a new, empty file whose name is not yet
// durable.
func (d *Disk) create(path string, flag int) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|flag, 0o644)
	if err != nil {
		return nil, err
	}
	d.record(path, func(s *diskFile) { *s = diskFile{} })
	return f, nil
}

// SetBeforeSync makes the Disk call fn with a file's path before each fsync of that file it
// does (directories are not included), in the goroutine that syncs it; nil removes it. It models
// a slow disk: a test that blocks in fn holds the fsync, and the writer that asked for it, where
// it is. It must not be called on a nil Disk.
func (d *Disk) SetBeforeSync(fn func(path string)) {
	d.mu.Lock()
	d.beforeSync = fn
	d.mu.Unlock()
}

// sync fsyncs f, which is the file at path, and records its size as durable.
func (d *Disk) sync(f *os.File, path string) error {
	if d != nil {
		d.mu.Lock()
		fn := d.beforeSync
		d.mu.Unlock()
		if fn != nil {
			fn(path)
		}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if d == nil {
		return nil
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	d.record(path, func(s *diskFile) { s.synced = fi.Size() })
	return nil
}

// truncate cuts f, the file at path, to n bytes.
func (d *Disk) truncate(f *os.File, path string, n int64) error {
	if err := f.Truncate(n); err != nil {
		return err
	}
	d.shrunk(path, n)
	return nil
}

// shrunk records that the file at path was cut to n bytes.
func (d *Disk) shrunk(path string, n int64) {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if f := d.files[filepath.Clean(path)]; f != nil {
		f.synced = min(f.synced, n)
	}
}

// rename renames from to to; to takes from's state, with a name not yet durable.
func (d *Disk) rename(from, to string) error {
	if err := os.Rename(from, to); err != nil {
		return err
	}
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	from, to = filepath.Clean(from), filepath.Clean(to)
	f := d.files[from]
	delete(d.files, from)
	if f == nil {
		f = &diskFile{synced: -1} // an untracked file: its bytes count as durable
	}
	f.durable = false
	d.files[to] = f
	return nil
}

// remove deletes path if it exists.
func (d *Disk) remove(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("log: %w", err)
	}
	if d != nil {
		d.mu.Lock()
		delete(d.files, filepath.Clean(path))
		d.mu.Unlock()
	}
	return nil
}

// syncDir fsyncs directory dir, which makes the names of the files in it durable.
func (d *Disk) syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		return err
	}
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	dir = filepath.Clean(dir)
	for path, s := range d.files {
		if filepath.Dir(path) == dir {
			s.durable = true
		}
	}
	return nil
}

// WriteFileAtomic replaces path with data: it writes a temporary file, fsyncs it, renames it
// over path and fsyncs the directory, so a crash or power loss leaves either the old or the new
// contents.
func (d *Disk) WriteFileAtomic(path string, data []byte) error {
	return d.writeFileAtomic(path, data, nil)
}

// writeFileAtomic is WriteFileAtomic; step, if not nil, is called after each change on disk
// (the temporary file written, fsynced, renamed, the directory fsynced).
func (d *Disk) writeFileAtomic(path string, data []byte, step func()) error {
	if step == nil {
		step = func() {}
	}
	tmp := path + tmpSuffix
	f, err := d.create(tmp, os.O_TRUNC|os.O_WRONLY)
	if err != nil {
		return fmt.Errorf("log: %w", err)
	}
	_, werr := f.Write(data)
	if werr == nil {
		step()
	}
	serr := d.sync(f, tmp)
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		_ = d.remove(tmp)
		return fmt.Errorf("log: write %s: %w", filepath.Base(path), err)
	}
	step()
	if err := d.rename(tmp, path); err != nil {
		_ = d.remove(tmp)
		return fmt.Errorf("log: %w", err)
	}
	step()
	if err := d.syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("log: write %s: %w", filepath.Base(path), err)
	}
	step()
	return nil
}

// PowerLoss makes the files look as a power loss would leave them: every file the Disk has seen
// is cut back to the bytes its last fsync covered, and a file whose name no directory fsync made
// durable is removed. Nothing may have the files open for writing (the broker is killed first).
// Afterwards everything on disk counts as durable. It returns the number of bytes lost and the
// files removed.
func (d *Disk) PowerLoss() (bytesLost int64, filesRemoved int, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for path, s := range d.files {
		fi, statErr := os.Stat(path)
		if errors.Is(statErr, os.ErrNotExist) {
			continue
		}
		if statErr != nil {
			errs = append(errs, statErr)
			continue
		}
		switch {
		case !s.durable:
			if err := os.RemoveAll(path); err != nil {
				errs = append(errs, err)
				continue
			}
			bytesLost += fi.Size()
			filesRemoved++
		case s.synced >= 0 && fi.Size() > s.synced:
			if err := os.Truncate(path, s.synced); err != nil {
				errs = append(errs, err)
				continue
			}
			bytesLost += fi.Size() - s.synced
		}
	}
	clear(d.files)
	if err := errors.Join(errs...); err != nil {
		return bytesLost, filesRemoved, fmt.Errorf("log: power loss: %w", err)
	}
	return bytesLost, filesRemoved, nil
}
