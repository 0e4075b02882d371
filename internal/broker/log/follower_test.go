package log

import (
	"bytes"
	"errors"
	"testing"
)

func TestAppendFollowerCopiesTheLeaderLog(t *testing.T) {
	leader := openLog(t, t.TempDir(), Config{})
	follower := openLog(t, t.TempDir(), Config{SegmentBytes: 1000})
	for i, e := range []int32{1, 1, 3, 3, 3} {
		if _, err := leader.AppendLeader(buildBatch(spec{records: i + 1, valueSize: 80}), e); err != nil {
			t.Fatal(err)
		}
	}
	// Fetch in small pieces, as a follower with a small max bytes would.
	for follower.EndOffset() < leader.EndOffset() {
		b, err := leader.Read(follower.EndOffset(), 300, leader.EndOffset())
		if err != nil {
			t.Fatal(err)
		}
		n, err := follower.AppendFollower(b)
		if err != nil || n != len(b) {
			t.Fatalf("AppendFollower: %d of %d bytes, %v", n, len(b), err)
		}
	}
	if !bytes.Equal(readAll(t, follower), readAll(t, leader)) {
		t.Fatal("follower bytes differ from the leader's")
	}
	for _, epoch := range []int32{0, 1, 2, 3, 4} {
		le, lo := leader.EpochEndOffset(epoch)
		fe, fo := follower.EpochEndOffset(epoch)
		if le != fe || lo != fo {
			t.Errorf("EpochEndOffset(%d): follower (%d, %d), leader (%d, %d)", epoch, fe, fo, le, lo)
		}
	}
}

func TestAppendFollowerIgnoresATrailingPartialBatch(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{})
	b1 := buildBatch(spec{base: 0, records: 2})
	b2 := buildBatch(spec{base: 2, records: 2})
	for _, cut := range []int{1, 11, 12, 40, len(b2) - 1} {
		if err := l.Truncate(0); err != nil {
			t.Fatal(err)
		}
		in := concat(b1, b2[:cut])
		n, err := l.AppendFollower(in)
		if err != nil || n != len(b1) {
			t.Fatalf("cut %d: appended %d, err %v; want %d", cut, n, err, len(b1))
		}
		if l.EndOffset() != 2 {
			t.Fatalf("cut %d: EndOffset %d, want 2", cut, l.EndOffset())
		}
	}
	if n, err := l.AppendFollower(b2[:30]); err != nil || n != 0 {
		t.Fatalf("only a partial batch: appended %d, err %v", n, err)
	}
	if n, err := l.AppendFollower(nil); err != nil || n != 0 {
		t.Fatalf("nothing: appended %d, err %v", n, err)
	}
}

func TestAppendFollowerRejectsBadInputWholly(t *testing.T) {
	corrupt := buildBatch(spec{base: 3})
	corrupt[len(corrupt)-1] ^= 1
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"first batch not at the end offset", buildBatch(spec{base: 4}), ErrOffsetMismatch},
		{"first batch behind the end offset", buildBatch(spec{base: 2}), ErrOffsetMismatch},
		{"gap between batches", concat(buildBatch(spec{base: 3}), buildBatch(spec{base: 5})), ErrOffsetMismatch},
		{"overlapping batches", concat(buildBatch(spec{base: 3, records: 2}), buildBatch(spec{base: 4})), ErrOffsetMismatch},
		{"corrupt second batch", concat(buildBatch(spec{base: 3}), corrupt), ErrCorruptBatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := openLog(t, t.TempDir(), Config{})
			appendN(t, l, 3, 1, 1, 0, 0, 1)
			before := readAll(t, l)
			if n, err := l.AppendFollower(tt.in); !errors.Is(err, tt.want) || n != 0 {
				t.Fatalf("got %d, %v; want 0, %v", n, err, tt.want)
			}
			if l.EndOffset() != 3 || !bytes.Equal(readAll(t, l), before) {
				t.Fatal("rejected append changed the log")
			}
		})
	}
}
