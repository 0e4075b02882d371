package produce

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/IBM/sarama"
)

func TestPresetNamesRoundTripThroughParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Preset
	}{
		{"NoLoss", NoLoss},
		{"noloss", NoLoss},
		{"StrictOrder", StrictOrder},
		{"STRICTORDER", StrictOrder},
		{"LeaderAck", LeaderAck},
		{"AtMostOnce", AtMostOnce},
		{"exactlyonce", ExactlyOnce},
	} {
		got, err := ParsePreset(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParsePreset(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if back, _ := ParsePreset(got.String()); back != got {
			t.Errorf("ParsePreset(%v.String()) = %v", got, back)
		}
	}
}

func TestZeroPresetIsNoLoss(t *testing.T) {
	var p Preset
	if p != NoLoss || p.String() != "NoLoss" {
		t.Fatalf("zero Preset = %v, want NoLoss", p)
	}
}

func TestParsePresetRejectsUnknownNames(t *testing.T) {
	for _, name := range []string{"", "no-loss", "acks=all", "NoLossX"} {
		if _, err := ParsePreset(name); !errors.Is(err, ErrUnknownPreset) {
			t.Errorf("ParsePreset(%q) error = %v, want ErrUnknownPreset", name, err)
		}
	}
}

func TestPresetUnmarshalsFromJSONString(t *testing.T) {
	var v struct{ Preset Preset }
	if err := json.Unmarshal([]byte(`{"Preset":"strictorder"}`), &v); err != nil {
		t.Fatal(err)
	}
	if v.Preset != StrictOrder {
		t.Fatalf("got %v, want StrictOrder", v.Preset)
	}
	out, err := json.Marshal(v)
	if err != nil || string(out) != `{"Preset":"StrictOrder"}` {
		t.Fatalf("Marshal = %s, %v", out, err)
	}
	if err := json.Unmarshal([]byte(`{"Preset":"fast"}`), &v); !errors.Is(err, ErrUnknownPreset) {
		t.Fatalf("unmarshal of an unknown name: %v, want ErrUnknownPreset", err)
	}
}

func TestUnknownPresetValueIsRefusedEverywhere(t *testing.T) {
	bad := Preset(42)
	if bad.String() != "Preset(42)" {
		t.Errorf("String = %q", bad.String())
	}
	if KgoOpts(bad) != nil {
		t.Error("KgoOpts of an unknown preset is not nil")
	}
	checks := map[string]error{}
	_, checks["ApplyKgo"] = ApplyKgo(bad, nil)
	checks["ValidateKgo"] = ValidateKgo(bad, nil)
	checks["ApplySarama"] = ApplySarama(bad, sarama.NewConfig())
	checks["ValidateSarama"] = ValidateSarama(bad, sarama.NewConfig())
	_, checks["MarshalText"] = bad.MarshalText()
	_, checks["NewSaramaSync"] = NewSaramaSync(nil, bad, nil)
	_, checks["New"] = New(t.Context(), bad)
	for name, err := range checks {
		if !errors.Is(err, ErrUnknownPreset) {
			t.Errorf("%s: error = %v, want ErrUnknownPreset", name, err)
		}
	}
}
