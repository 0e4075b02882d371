package verify

import (
	"errors"
	"strings"
	"testing"

	"github.com/kafkaguard/kafkaguard/produce"
)

func TestResultJudgesEachPresetByItsOwnPromise(t *testing.T) {
	t.Parallel()
	lost := Report{Acked: 10, Read: 9, Lost: 1, LostSample: []Value{{0, 9}}}
	dup := Report{Acked: 10, Read: 11, Duplicated: 1, DuplicatedSample: []Value{{0, 3}}}
	reord := Report{Acked: 10, Read: 10, Reordered: 1, ReorderedSample: []Value{{0, 3}}}
	clean := Report{Acked: 10, Read: 10}
	tests := []struct {
		name    string
		res     Result
		wantErr []error
		verdict string
	}{
		{"NoLoss clean", Result{Preset: produce.NoLoss, Fault: FaultKillLeader, Report: clean}, nil, "ok"},
		{"NoLoss lost", Result{Preset: produce.NoLoss, Fault: FaultKillLeader, Report: lost}, []error{ErrLost}, "FAIL: lost"},
		{"StrictOrder duplicated", Result{Preset: produce.StrictOrder, Fault: FaultNone, Report: dup}, []error{ErrDuplicated}, "FAIL: duplicated"},
		{"StrictOrder reordered", Result{Preset: produce.StrictOrder, Fault: FaultNone, Report: reord}, []error{ErrReordered}, "FAIL: reordered"},
		{"LeaderAck may lose", Result{Preset: produce.LeaderAck, Fault: FaultIsolateLeader, Report: lost}, nil, "allowed by acks=1"},
		{"LeaderAck must lose under the loss schedule", Result{Preset: produce.LeaderAck, Fault: FaultPauseFollowersKillLeader, Report: clean},
			[]error{ErrFaultMissed}, "FAIL: no loss shown"},
		{"LeaderAck losing under the loss schedule", Result{Preset: produce.LeaderAck, Fault: FaultPauseFollowersKillLeader, Report: lost}, nil, "allowed by acks=1"},
		{"AtMostOnce may lose", Result{Preset: produce.AtMostOnce, Fault: FaultKillLeader, Report: lost, Failed: 3}, nil, "allowed by acks=0 (3 not acked)"},
		{"failed sends are reported", Result{Preset: produce.NoLoss, Fault: FaultNone, Report: clean, Failed: 2}, nil, "ok (2 not acked)"},
		{"corrupt records fail any preset", Result{Preset: produce.AtMostOnce, Fault: FaultNone, Report: clean, Corrupt: 1}, []error{ErrCorrupt}, "FAIL: corrupt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.res.Err()
			if (err == nil) != (len(tt.wantErr) == 0) {
				t.Fatalf("Err() = %v, want %v", err, tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !errors.Is(err, w) {
					t.Errorf("Err() = %v, does not match %v", err, w)
				}
			}
			if err != nil && !strings.Contains(err.Error(), tt.res.Preset.String()) {
				t.Errorf("Err() = %v, does not name the preset", err)
			}
			if got := tt.res.Verdict(); got != tt.verdict {
				t.Errorf("Verdict() = %q, want %q", got, tt.verdict)
			}
		})
	}
}

func TestParseFaultAndClient(t *testing.T) {
	t.Parallel()
	for _, f := range Faults() {
		got, err := ParseFault(strings.ToUpper(string(f)))
		if err != nil || got != f {
			t.Errorf("ParseFault(%q) = %q, %v", strings.ToUpper(string(f)), got, err)
		}
	}
	if _, err := ParseFault("kill-everything"); !errors.Is(err, ErrUnknownFault) {
		t.Errorf("ParseFault(kill-everything) error %v, want ErrUnknownFault", err)
	}
	for in, want := range map[string]Client{"franz-go": ClientFranzGo, "Sarama": ClientSarama} {
		if got, err := ParseClient(in); err != nil || got != want {
			t.Errorf("ParseClient(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseClient("librdkafka"); !errors.Is(err, ErrUnknownClient) {
		t.Errorf("ParseClient(librdkafka) error %v, want ErrUnknownClient", err)
	}
}
