package verify

import (
	"errors"
	"testing"
)

func TestValueRoundTripsThroughText(t *testing.T) {
	t.Parallel()
	for _, v := range []Value{{0, 0}, {3, 17}, {999, 123456789}} {
		got, err := ParseValue([]byte(v.String()))
		if err != nil || got != v {
			t.Errorf("ParseValue(%q) = %v, %v; want %v", v.String(), got, err, v)
		}
	}
	if got := (Value{Key: 3, Seq: 17}).String(); got != "k3:17" {
		t.Errorf("String() = %q, want k3:17", got)
	}
	if got := (Value{Key: 3, Seq: 17}).RecordKey(); got != "k3" {
		t.Errorf("RecordKey() = %q, want k3", got)
	}
}

func TestParseValueRejectsWhatTheWorkloadNeverWrites(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"", "k", "k1", "k1:", "k:1", "1:2", "x1:2", "k1:2:3", "k01:2", "k1:02", "k-1:2",
		"k1:+2", "k1: 2", "k1:2 ", "k1234567890:1", "K1:2", "k1:2\n", "\xff"} {
		if v, err := ParseValue([]byte(in)); !errors.Is(err, ErrBadValue) {
			t.Errorf("ParseValue(%q) = %v, %v; want ErrBadValue", in, v, err)
		}
	}
}

func TestWorkloadRaisesEachKeysSequenceByOne(t *testing.T) {
	t.Parallel()
	w := Workload(7, 3)
	want := []Value{{0, 0}, {1, 0}, {2, 0}, {0, 1}, {1, 1}, {2, 1}, {0, 2}}
	if len(w) != len(want) {
		t.Fatalf("Workload(7, 3) = %v", w)
	}
	for i := range w {
		if w[i] != want[i] {
			t.Fatalf("Workload(7, 3) = %v, want %v", w, want)
		}
	}
	if Workload(0, 3) != nil || Workload(3, 0) != nil || Workload(-1, 1) != nil {
		t.Error("Workload with a non-positive size or key count is not empty")
	}
}

func FuzzParseValue(f *testing.F) {
	for _, s := range []string{"k0:0", "k3:17", "k1:02", "", "k:", "k9999999999:1"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ParseValue(b)
		if err != nil {
			if !errors.Is(err, ErrBadValue) {
				t.Fatalf("error %v does not match ErrBadValue", err)
			}
			return
		}
		if v.String() != string(b) {
			t.Fatalf("ParseValue(%q) = %v, which prints as %q", b, v, v.String())
		}
	})
}
