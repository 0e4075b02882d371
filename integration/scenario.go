package integration

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Scenario is one behaviour of the suite, run against any [Cluster].
type Scenario struct {
	// Name is the subtest name; it states the behaviour.
	Name string
	// Brokers is how many brokers the scenario needs.
	Brokers int
	// Faults lists the faults it injects (for the skip message).
	Faults []string
	// Run runs the scenario; it fails t when the behaviour does not hold.
	Run func(t *testing.T, c Cluster)
}

// Scenarios returns the suite in the order it runs.
func Scenarios() []Scenario {
	return []Scenario{
		{Name: "AuditFailsWeakTopicAndPassesHardenedTopic", Brokers: 3, Run: auditFindings},
		{Name: "NoLossPresetLosesNothingWhenLeaderIsKilledMidStream", Brokers: 3, Faults: []string{"kill", "restart"}, Run: noLossLeaderKilled},
		{Name: "LeaderAckLosesAckedRecordsWhenLeaderDiesBeforeReplication", Brokers: 3, Faults: []string{"pause", "kill", "restart"}, Run: leaderAckLoss},
		{Name: "NoLossNeverAcksWhatFollowersDidNotCopy", Brokers: 3, Faults: []string{"pause", "kill", "restart"}, Run: noLossNeverAcksUncopied},
		{Name: "GroupResumesFromManualCommitsAfterCoordinatorIsKilled", Brokers: 3, Faults: []string{"kill", "restart"}, Run: groupManualCommits},
		{Name: "OrderedConsumptionKeepsPerKeyOrderWithParallelHandlers", Brokers: 1, Run: orderedConsumption},
		{Name: "ConsumerParksFailuresAndRetryJobHandlesThemInKeyOrder", Brokers: 1, Run: consumerWithRetryJob},
		{Name: "TransactionalCopyIsExactlyOnceWhileCopiersAndBrokersAreKilled", Brokers: 3, Faults: []string{"kill", "restart"}, Run: transactionalCopy},
		{Name: "UnconfirmedTransactionCommitIsNotCopiedAgainByANewSession", Brokers: 1, Run: unconfirmedCommit},
		{Name: "CopierWhoseCommitAnswerIsLostCopiesEachRecordOnce", Brokers: 1, Run: copierAfterUnconfirmedCommit},
		{Name: "ExactlyOnceConsumerSurvivesACrashAtEveryStepOfItsTransaction", Brokers: 3, Run: eosConsumerCrashes},
		{Name: "FencedTransactionalProducerIsRefusedAsKafkaRefusesIt", Brokers: 1, Run: fencedProducerRefused},
		{Name: "LateTransactionalProduceIsRefusedAndLeavesNoTransactionOpen", Brokers: 1, Run: lateProduceRefused},
		{Name: "TxnOffsetCommitOutsideItsTransactionIsRefused", Brokers: 1, Run: unverifiedOffsetsRefused},
	}
}

// Run runs s against c as a subtest of t: it logs the target first, skips
// when c has too few brokers or lacks a fault s needs, and afterwards undoes
// every fault s injected (resuming paused brokers, restarting killed ones)
// so the next scenario finds the cluster whole.
func Run(t *testing.T, c Cluster, s Scenario) {
	t.Run(s.Name, func(t *testing.T) { runOn(t, c, s) })
}

// runOn is Run's subtest: s against c.
func runOn(t *testing.T, c Cluster, s Scenario) {
	t.Logf("target=%s (%s)", c.Target(), c.Describe())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adm := newAdmin(t, c)
	brokers, err := adm.ListBrokers(ctx)
	if err != nil {
		t.Fatalf("list brokers: %v", err)
	}
	if len(brokers) < s.Brokers {
		t.Skipf("needs %d brokers, cluster has %d", s.Brokers, len(brokers))
	}
	fc := &faultTracker{Cluster: c}
	t.Cleanup(func() { fc.heal(t) })
	s.Run(t, fc)
}

// faultTracker records the faults a scenario injects so Run can undo them.
type faultTracker struct {
	Cluster
	mu     sync.Mutex
	killed []int32
	paused []int32
}

func (f *faultTracker) Kill(ctx context.Context, id int32) error {
	err := f.Cluster.Kill(ctx, id)
	if err == nil {
		f.mu.Lock()
		f.killed = append(f.killed, id)
		f.mu.Unlock()
	}
	return err
}

func (f *faultTracker) Restart(ctx context.Context, id int32) error {
	err := f.Cluster.Restart(ctx, id)
	if err == nil {
		f.mu.Lock()
		f.killed = slices.DeleteFunc(f.killed, func(k int32) bool { return k == id })
		f.mu.Unlock()
	}
	return err
}

func (f *faultTracker) PauseReplication(ctx context.Context, id int32) error {
	err := f.Cluster.PauseReplication(ctx, id)
	if err == nil {
		f.mu.Lock()
		f.paused = append(f.paused, id)
		f.mu.Unlock()
	}
	return err
}

func (f *faultTracker) ResumeReplication(ctx context.Context, id int32) error {
	err := f.Cluster.ResumeReplication(ctx, id)
	if err == nil {
		f.mu.Lock()
		f.paused = slices.DeleteFunc(f.paused, func(k int32) bool { return k == id })
		f.mu.Unlock()
	}
	return err
}

// heal resumes paused brokers and restarts killed ones, then waits until
// every broker is back in the cluster metadata.
func (f *faultTracker) heal(t *testing.T) {
	f.mu.Lock()
	paused, killed := slices.Clone(f.paused), slices.Clone(f.killed)
	f.mu.Unlock()
	if len(paused) == 0 && len(killed) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, id := range paused {
		// A paused broker that was also killed is gone; resuming it fails.
		if slices.Contains(killed, id) {
			continue
		}
		if err := f.ResumeReplication(ctx, id); err != nil {
			t.Errorf("heal: resume broker %d: %v", id, err)
		}
	}
	for _, id := range killed {
		if err := f.Restart(ctx, id); err != nil {
			t.Errorf("heal: restart broker %d: %v", id, err)
		}
	}
	adm := newAdmin(t, f.Cluster)
	want := append(paused, killed...)
	for {
		brokers, err := adm.ListBrokers(ctx)
		if err == nil && containsAll(brokers.NodeIDs(), want) {
			return
		}
		if !sleepCtx(ctx, 200*time.Millisecond) {
			t.Errorf("heal: brokers %v did not come back: %v (last list %v)", want, ctx.Err(), brokers.NodeIDs())
			return
		}
	}
}

func containsAll(have, want []int32) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// newAdmin returns an admin client for c, closed when t ends. Its metadata
// cache lives 100 ms, not franz-go's default 5 s: kadm answers Metadata from
// that cache, and the helpers poll it for a state that brokers learn one by
// one (a broker asked before it learned of a new topic would otherwise pin
// UNKNOWN_TOPIC_OR_PARTITION for 5 s).
func newAdmin(t testing.TB, c Cluster) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.RequestTimeoutOverhead(5*time.Second),
		kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		t.Fatalf("admin client: %v", err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// uniqueName returns prefix plus a random suffix, so reruns against a
// long-lived external cluster never meet an old topic or group.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%06x", prefix, rand.Uint32()&0xffffff)
}

// skipIfUnsupported skips t when err says the cluster cannot inject a fault,
// and fails it on any other error.
func skipIfUnsupported(t *testing.T, what string, err error) {
	t.Helper()
	if errors.Is(err, ErrUnsupported) {
		t.Skipf("%s: %v", what, err)
	}
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
