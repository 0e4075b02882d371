package server

import (
	"maps"
	"os"
	"path/filepath"
	"testing"
)

// TestHWCheckpointIsKafkasOffsetCheckpointFormat: version 0, the count, then "topic partition
// offset" lines; it reads back to the same map, and malformed files are refused.
func TestHWCheckpointIsKafkasOffsetCheckpointFormat(t *testing.T) {
	t.Parallel()
	hws := map[tp]int64{{"orders", 1}: 7, {"orders", 0}: 5, {"a.b-c", 2}: 0}
	data := encodeHWCheckpoint(hws)
	if want := "0\n3\na.b-c 2 0\norders 0 5\norders 1 7\n"; string(data) != want {
		t.Fatalf("encoded %q, want %q", data, want)
	}
	got, err := decodeHWCheckpoint(data)
	if err != nil || !maps.Equal(got, hws) {
		t.Fatalf("decoded %v, %v; want %v", got, err, hws)
	}
	for _, bad := range []string{"", "1\n0\n", "0\n2\norders 0 5\n", "0\n1\norders x 5\n", "0\n1\norders 0 -1\n", "0\n1\norders 0\n"} {
		if _, err := decodeHWCheckpoint([]byte(bad)); err == nil {
			t.Errorf("decoded %q without error", bad)
		}
	}
	dir := t.TempDir()
	if m, err := readHWCheckpoint(filepath.Join(dir, hwCheckpointName)); err != nil || len(m) != 0 {
		t.Fatalf("missing checkpoint: %v, %v; want empty", m, err)
	}
	if err := os.WriteFile(filepath.Join(dir, hwCheckpointName), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if m, err := readHWCheckpoint(filepath.Join(dir, hwCheckpointName)); err == nil || len(m) != 0 {
		t.Fatalf("garbage checkpoint: %v, %v; want an error and an empty map", m, err)
	}
}
