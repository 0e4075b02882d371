package log

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestDiskPowerLossKeepsExactlyWhatFsyncsMadeDurable walks the model: a created file whose
// name no directory fsync covered disappears even if its data was fsynced; a durable name keeps
// the bytes of its last fsync and loses the rest; a truncation lowers what is kept; a file the
// Disk never saw is left alone; a rename is durable once the directory is fsynced.
func TestDiskPowerLossKeepsExactlyWhatFsyncsMadeDurable(t *testing.T) {
	dir, d := t.TempDir(), NewDisk()
	path := func(name string) string { return filepath.Join(dir, name) }
	write := func(name string, data string, sync bool) *os.File {
		t.Helper()
		f, err := d.create(path(name), os.O_RDWR)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(data); err != nil {
			t.Fatal(err)
		}
		if sync {
			if err := d.sync(f, path(name)); err != nil {
				t.Fatal(err)
			}
		}
		return f
	}
	old := path("old")
	if err := os.WriteFile(old, []byte("from before"), 0o644); err != nil {
		t.Fatal(err)
	}
	kept := write("kept", "0123456789", true)
	defer kept.Close()
	shrunk := write("shrunk", "0123456789", true)
	defer shrunk.Close()
	renamed := write("renamed.tmp", "abc", true)
	defer renamed.Close()
	if err := d.syncDir(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := kept.WriteString("unsynced"); err != nil {
		t.Fatal(err)
	}
	if err := d.truncate(shrunk, path("shrunk"), 4); err != nil {
		t.Fatal(err)
	}
	if _, err := shrunk.WriteAt([]byte("xyz"), 4); err != nil {
		t.Fatal(err)
	}
	if err := d.rename(path("renamed.tmp"), path("renamed")); err != nil {
		t.Fatal(err)
	}
	if err := d.rename(old, path("moved")); err != nil {
		t.Fatal(err)
	}
	if err := d.syncDir(dir); err != nil {
		t.Fatal(err)
	}
	if f, err := d.create(path("new"), os.O_RDWR); err != nil {
		t.Fatal(err)
	} else {
		f.Close()
	}
	lost := write("unnamed", "fsynced, but no directory fsync", true)
	defer lost.Close()

	bytesLost, removed, err := d.PowerLoss()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"kept": "0123456789", "shrunk": "0123", "renamed": "abc", "moved": "from before"}
	for name, content := range want {
		if b, err := os.ReadFile(path(name)); err != nil || string(b) != content {
			t.Errorf("%s after the power loss: %q, %v; want %q", name, b, err, content)
		}
	}
	for _, name := range []string{"unnamed", "new", "renamed.tmp"} {
		if _, err := os.Stat(path(name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived the power loss (%v); its name was never made durable", name, err)
		}
	}
	if wantLost := int64(len("unsynced") + len("xyz") + len("fsynced, but no directory fsync")); bytesLost != wantLost || removed != 2 {
		t.Errorf("PowerLoss reported %d bytes lost and %d files removed, want %d and 2", bytesLost, removed, wantLost)
	}
}
