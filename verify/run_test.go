package verify

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kafkaguard/kafkaguard/kafkatest"
	"github.com/kafkaguard/kafkaguard/produce"
)

// TestRunUnderFaults runs the presets against the bundled cluster under the schedules that
// matter most. NoLoss and StrictOrder must keep every acknowledged record, once and in order;
// LeaderAck must lose acknowledged records when its leader dies before the followers copied
// them — the proof that the checker can fail at all.
func TestRunUnderFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		preset   produce.Preset
		client   Client
		fault    Fault
		wantLoss bool
	}{
		{produce.NoLoss, ClientFranzGo, FaultPauseFollowersKillLeader, false},
		{produce.LeaderAck, ClientFranzGo, FaultPauseFollowersKillLeader, true},
		{produce.StrictOrder, ClientFranzGo, FaultIsolateLeader, false},
		{produce.NoLoss, ClientFranzGo, FaultKillFollower, false},
		{produce.NoLoss, ClientSarama, FaultKillLeader, false},
		{produce.LeaderAck, ClientSarama, FaultPauseFollowersKillLeader, true},
	}
	for _, tt := range tests {
		t.Run(tt.preset.String()+"/"+string(tt.client)+"/"+string(tt.fault), func(t *testing.T) {
			t.Parallel()
			c := kafkatest.NewCluster(t, kafkatest.Brokers(3)) // its own: the runs' faults must not meet
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			var mu sync.Mutex
			stages := map[string]bool{}
			res, err := Run(ctx, Config{
				Preset: tt.preset, Client: tt.client, Fault: tt.fault,
				Records: 1000, Keys: 5, Rate: 1000,
				Bootstrap: c.Bootstrap(), Faults: ClusterFaults(c),
				Progress: func(p Progress) {
					mu.Lock()
					stages[strings.Fields(p.Stage)[0]] = true
					mu.Unlock()
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			r := res.Report
			t.Logf("%s: sent %d, acked %d, failed %d, lost %d, duplicated %d, reordered %d, unacked-present %d, %v",
				res.Topic, res.Sent, r.Acked, res.Failed, r.Lost, r.Duplicated, r.Reordered, r.UnackedPresent, res.Duration)
			if res.Sent != 1000 || len(res.Acked) != r.Acked {
				t.Fatalf("sent %d, %d acks listed for %d acked", res.Sent, len(res.Acked), r.Acked)
			}
			if r.Acked+res.Failed != res.Sent {
				t.Errorf("acked %d + failed %d != sent %d", r.Acked, res.Failed, res.Sent)
			}
			if tt.wantLoss {
				if r.Lost == 0 {
					t.Fatalf("%s lost nothing under %s: the fault schedule did not bite", tt.preset, tt.fault)
				}
				if r.Acked != res.Sent {
					t.Errorf("acks=1 acknowledged %d of %d", r.Acked, res.Sent)
				}
				if err := res.Err(); err != nil {
					t.Errorf("Err() = %v; loss is LeaderAck's documented behaviour", err)
				}
			} else {
				if err := res.Err(); err != nil {
					t.Fatal(err)
				}
				if r.Acked != res.Sent || r.Read != res.Sent {
					t.Errorf("acked %d, read %d of %d sent", r.Acked, r.Read, res.Sent)
				}
			}
			for _, a := range res.Acked {
				if a.Partition < 0 || a.Offset < 0 {
					t.Fatalf("ack %+v has no position", a)
				}
			}
			checkTimeline(t, res)
			for _, want := range []string{"create", "produce", "read"} {
				if !stages[want] {
					t.Errorf("no %q progress among %v", want, stages)
				}
			}
		})
	}
}

func TestRunRefusesBadConfigBeforeTouchingTheCluster(t *testing.T) {
	t.Parallel()
	boot := []string{"127.0.0.1:1"} // nothing listens: a run that got past validation would hang
	tests := []struct {
		name string
		cfg  Config
		want string
		is   error
	}{
		{"no bootstrap", Config{}, "Bootstrap lists no brokers", nil},
		{"fault without injector", Config{Bootstrap: boot, Fault: FaultKillLeader}, "needs a FaultInjector", nil},
		{"unknown fault", Config{Bootstrap: boot, Fault: "flood"}, "unknown fault", ErrUnknownFault},
		{"unknown client", Config{Bootstrap: boot, Client: "kcat"}, "unknown client", ErrUnknownClient},
		{"unknown preset", Config{Bootstrap: boot, Preset: produce.Preset(9)}, "Preset", produce.ErrUnknownPreset},
		{"more keys than records", Config{Bootstrap: boot, Records: 5, Keys: 6}, "Keys must be between 1 and Records", nil},
		{"negative records", Config{Bootstrap: boot, Records: -1}, "Records must be positive", nil},
		{"negative rate", Config{Bootstrap: boot, Rate: -5}, "Rate must be positive", nil},
		{"schedule the injector cannot do", Config{Bootstrap: boot, Fault: FaultIsolateLeader,
			Faults: &ExecFaults{Bootstrap: boot, KillCmd: "true", RestartCmd: "true"}}, "isolate", ErrUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := Run(ctx, tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run = %v, want an error containing %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Run = %v, does not match %v", err, tt.is)
			}
			if errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Run tried the cluster: %v", err)
			}
		})
	}
}

func TestRunFailsWhenTheTopicExists(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t, kafkatest.Brokers(3))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.CreateTopic(ctx, "taken", 1, 3, nil); err != nil {
		t.Fatal(err)
	}
	_, err := Run(ctx, Config{Topic: "taken", Records: 10, Keys: 1, Bootstrap: c.Bootstrap()})
	if err == nil || !strings.Contains(err.Error(), "create topic taken") {
		t.Fatalf("Run = %v, want the topic creation error", err)
	}
}
