package log

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// epochLog builds a log with epoch 0 at offsets [0, 3), epoch 2 at [3, 5)
// and epoch 5 at [5, 7), one record per batch.
func epochLog(t *testing.T, dir string) *Log {
	t.Helper()
	return epochLogWith(t, dir, Config{SegmentBytes: 300})
}

func epochLogWith(t *testing.T, dir string, cfg Config) *Log {
	t.Helper()
	l := openLog(t, dir, cfg)
	for _, e := range []int32{0, 0, 0, 2, 2, 5, 5} {
		if _, err := l.AppendLeader(buildBatch(spec{valueSize: 50}), e); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

type epochQuery struct {
	epoch     int32
	wantEpoch int32
	wantEnd   int64
}

func checkEpochQueries(t *testing.T, l *Log, qs []epochQuery) {
	t.Helper()
	for _, q := range qs {
		if e, end := l.EpochEndOffset(q.epoch); e != q.wantEpoch || end != q.wantEnd {
			t.Errorf("EpochEndOffset(%d) = (%d, %d), want (%d, %d)", q.epoch, e, end, q.wantEpoch, q.wantEnd)
		}
	}
}

var fullEpochQueries = []epochQuery{
	{epoch: -1, wantEpoch: -1, wantEnd: -1},
	{epoch: 0, wantEpoch: 0, wantEnd: 3},
	{epoch: 1, wantEpoch: 0, wantEnd: 3}, // unknown epoch: the largest below it
	{epoch: 2, wantEpoch: 2, wantEnd: 5},
	{epoch: 4, wantEpoch: 2, wantEnd: 5},
	{epoch: 5, wantEpoch: 5, wantEnd: 7}, // latest: ends at EndOffset
	{epoch: 9, wantEpoch: 5, wantEnd: 7},
}

func TestEpochCacheAnswersOffsetForLeaderEpoch(t *testing.T) {
	l := epochLog(t, t.TempDir())
	if l.LatestEpoch() != 5 {
		t.Fatalf("LatestEpoch %d, want 5", l.LatestEpoch())
	}
	checkEpochQueries(t, l, fullEpochQueries)
	got, err := os.ReadFile(filepath.Join(l.Dir(), checkpointName))
	if err != nil {
		t.Fatal(err)
	}
	if want := "0\n3\n0 0\n2 3\n5 5\n"; string(got) != want {
		t.Fatalf("checkpoint file %q, want %q", got, want)
	}
}

func TestEpochCacheFollowsTruncation(t *testing.T) {
	dir := t.TempDir()
	l := epochLog(t, dir)
	if err := l.Truncate(4); err != nil {
		t.Fatal(err)
	}
	want := []epochQuery{{0, 0, 3}, {2, 2, 4}, {5, 2, 4}}
	if l.LatestEpoch() != 2 {
		t.Fatalf("LatestEpoch after truncate %d, want 2", l.LatestEpoch())
	}
	checkEpochQueries(t, l, want)
	// A new leader's epoch starts where the log now ends.
	if _, err := l.AppendLeader(buildBatch(spec{}), 7); err != nil {
		t.Fatal(err)
	}
	want = []epochQuery{{0, 0, 3}, {2, 2, 4}, {5, 2, 4}, {7, 7, 5}}
	checkEpochQueries(t, l, want)
	l.Close()
	l2 := openLog(t, dir, Config{})
	checkEpochQueries(t, l2, want)
	if err := l2.Truncate(3); err != nil {
		t.Fatal(err)
	}
	checkEpochQueries(t, l2, []epochQuery{{0, 0, 3}, {2, 0, 3}, {7, 0, 3}})
	if err := l2.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if l2.LatestEpoch() != -1 {
		t.Fatalf("LatestEpoch of an empty log %d, want -1", l2.LatestEpoch())
	}
	checkEpochQueries(t, l2, []epochQuery{{0, -1, -1}, {3, -1, -1}})
}

func TestEpochCheckpointIsRebuiltWhenMissingOrWrong(t *testing.T) {
	tests := []struct {
		name       string
		checkpoint *string // nil: delete the file
	}{
		{name: "missing", checkpoint: nil},
		{name: "garbage", checkpoint: ptr("hello\nworld\n")},
		{name: "wrong version", checkpoint: ptr("1\n0\n")},
		{name: "count larger than entries", checkpoint: ptr("0\n4\n0 0\n2 3\n5 5\n")},
		{name: "entries out of order", checkpoint: ptr("0\n3\n0 0\n5 5\n2 3\n")},
		{name: "lags the log: last epoch missing", checkpoint: ptr("0\n2\n0 0\n2 3\n")},
		{name: "wrong start offset", checkpoint: ptr("0\n3\n0 0\n2 4\n5 5\n")},
		{name: "epoch the log never had", checkpoint: ptr("0\n4\n0 0\n1 2\n2 3\n5 5\n")},
		{name: "empty", checkpoint: ptr("")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			l := epochLog(t, dir)
			l.Close()
			path := filepath.Join(dir, checkpointName)
			if tt.checkpoint == nil {
				removeFile(t, path)
			} else {
				writeFile(t, path, []byte(*tt.checkpoint))
			}
			log := &testLogger{}
			l2, err := Open(dir, Config{}, log.logger())
			if err != nil {
				t.Fatalf("Open failed because of the checkpoint: %v", err)
			}
			defer l2.Close()
			checkEpochQueries(t, l2, fullEpochQueries)
			if got := string(readFile(t, path)); got != "0\n3\n0 0\n2 3\n5 5\n" {
				t.Fatalf("checkpoint not rewritten: %q", got)
			}
			if tt.checkpoint != nil && !strings.Contains(log.String(), "rebuilding") {
				t.Errorf("no warning about rebuilding:\n%s", log.String())
			}
		})
	}
}

func TestEpochCheckpointPastTheRecoveredEndIsTrimmed(t *testing.T) {
	dir := t.TempDir()
	l := epochLogWith(t, dir, Config{})
	l.Close()
	// A crash tore the last two batches (epoch 5) off the active segment.
	segs := segmentFiles(t, dir, logSuffix)
	last := filepath.Join(dir, segs[len(segs)-1])
	bsz := int64(len(buildBatch(spec{valueSize: 50})))
	truncateFile(t, last, fileSize(t, last)-bsz-10)
	l2 := openLog(t, dir, Config{})
	if l2.EndOffset() != 5 || l2.LatestEpoch() != 2 {
		t.Fatalf("end %d epoch %d, want 5 and 2", l2.EndOffset(), l2.LatestEpoch())
	}
	checkEpochQueries(t, l2, []epochQuery{{2, 2, 5}, {5, 2, 5}})
}

func ptr[T any](v T) *T { return &v }
