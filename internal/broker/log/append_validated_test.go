package log

import (
	"errors"
	"testing"
)

func TestAppendValidatedSetsOffsetsAndRefusesHeadersThatDoNotCoverTheBytes(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{})
	two := concat(buildBatch(spec{records: 3, ts: 1}), buildBatch(spec{records: 2, ts: 2}))
	hs, err := ValidateBatches(two, 0)
	if err != nil {
		t.Fatal(err)
	}
	base, err := l.AppendValidated(two, hs, 4)
	if err != nil {
		t.Fatal(err)
	}
	if base != 0 || hs[0].BaseOffset != 0 || hs[1].BaseOffset != 3 || hs[1].LastOffset() != 4 || hs[1].PartitionLeaderEpoch != 4 {
		t.Fatalf("base %d, headers %+v: want offsets 0 and 3..4 in epoch 4", base, hs)
	}
	if l.EndOffset() != 5 {
		t.Fatalf("end offset %d, want 5", l.EndOffset())
	}

	one := buildBatch(spec{records: 1, ts: 3})
	h1, err := ValidateBatches(one, 0)
	if err != nil {
		t.Fatal(err)
	}
	extra := concat(one, buildBatch(spec{records: 1, ts: 4}))
	if _, err := l.AppendValidated(extra, h1, 4); !errors.Is(err, ErrCorruptBatch) {
		t.Fatalf("headers for 1 of 2 batches: got %v, want ErrCorruptBatch", err)
	}
	if _, err := l.AppendValidated(one, nil, 4); !errors.Is(err, ErrCorruptBatch) {
		t.Fatalf("no headers: got %v, want ErrCorruptBatch", err)
	}
	if l.EndOffset() != 5 {
		t.Fatalf("a refused append moved the end offset to %d", l.EndOffset())
	}
}
