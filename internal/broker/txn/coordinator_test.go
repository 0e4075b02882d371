package txn

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/group"
)

// fakeStore keeps appended records and reports each decoded one on appended. Like the broker's
// store it honours ctx: an Append whose ctx is done fails with ctx's error.
type fakeStore struct {
	mu       sync.Mutex
	recs     []group.Record
	fail     error
	appended chan Metadata
}

func newFakeStore() *fakeStore { return &fakeStore{appended: make(chan Metadata, 100)} }

func (s *fakeStore) Append(ctx context.Context, recs []group.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.recs = append(s.recs, recs...)
	for _, r := range recs {
		m, _, _ := Decode(r.Key, r.Value)
		s.appended <- m
	}
	return nil
}

func (s *fakeStore) snapshot() []group.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]group.Record(nil), s.recs...)
}

func (s *fakeStore) replay() group.Replay {
	s.mu.Lock()
	recs := append([]group.Record(nil), s.recs...)
	s.mu.Unlock()
	return func(yield func(group.Record) bool) error {
		for _, r := range recs {
			if !yield(r) {
				return nil
			}
		}
		return nil
	}
}

type marker struct {
	producerID       int64
	epoch            int16
	commit           bool
	coordinatorEpoch int32
	parts            []Partition
}

// fakeMarkers records the markers written; it fails while fail is set.
type fakeMarkers struct {
	mu      sync.Mutex
	written []marker
	fail    error
	calls   int
}

func (f *fakeMarkers) WriteMarkers(_ context.Context, producerID int64, epoch int16, commit bool, coordinatorEpoch int32, parts []Partition) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.fail != nil {
		return f.fail
	}
	f.written = append(f.written, marker{producerID, epoch, commit, coordinatorEpoch, parts})
	return nil
}

func (f *fakeMarkers) all() []marker {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]marker(nil), f.written...)
}

type fixture struct {
	c       *Coordinator
	store   *fakeStore
	markers *fakeMarkers
	nextPID int64
	now     time.Time
	mu      sync.Mutex
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{store: newFakeStore(), markers: &fakeMarkers{}, nextPID: 1000, now: time.UnixMilli(1_000_000)}
	f.c = f.coordinator(t)
	if err := f.c.Load(context.Background(), 0, 0, f.store, f.store.replay()); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) coordinator(t *testing.T) *Coordinator {
	c := NewCoordinator(Config{
		Partitions: 1, OffsetsPartitions: 50, Markers: f.markers, RetryBackoff: time.Millisecond,
		AllocateProducerID: func(context.Context) (int64, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.nextPID++
			return f.nextPID, nil
		},
		Now: func() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.now },
	}, nil)
	t.Cleanup(c.Close)
	return c
}

func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

// await waits for the store to persist id in state want, skipping others.
func (f *fixture) await(t *testing.T, want State) Metadata {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case m := <-f.store.appended:
			if m.State == want {
				return m
			}
		case <-deadline:
			t.Fatalf("no %s record persisted", want)
		}
	}
}

func initReq(id string, pid int64, epoch int16) *kmsg.InitProducerIDRequest {
	r := kmsg.NewPtrInitProducerIDRequest()
	r.Version = 4
	r.TransactionalID, r.TransactionTimeoutMillis, r.ProducerID, r.ProducerEpoch = &id, 60000, pid, epoch
	return r
}

func addReq(id string, pid int64, epoch int16, topic string, parts ...int32) *kmsg.AddPartitionsToTxnRequest {
	r := kmsg.NewPtrAddPartitionsToTxnRequest()
	r.Version = 3
	r.TransactionalID, r.ProducerID, r.ProducerEpoch = id, pid, epoch
	t := kmsg.NewAddPartitionsToTxnRequestTopic()
	t.Topic, t.Partitions = topic, parts
	r.Topics = append(r.Topics, t)
	return r
}

func addCode(t *testing.T, resp *kmsg.AddPartitionsToTxnResponse) int16 {
	t.Helper()
	c := resp.Topics[0].Partitions[0].ErrorCode
	for _, rt := range resp.Topics {
		for _, p := range rt.Partitions {
			if p.ErrorCode != c {
				t.Fatalf("partitions answered differently: %+v", resp.Topics)
			}
		}
	}
	return c
}

func endReq(id string, pid int64, epoch int16, commit bool) *kmsg.EndTxnRequest {
	r := kmsg.NewPtrEndTxnRequest()
	r.Version = 3
	r.TransactionalID, r.ProducerID, r.ProducerEpoch, r.Commit = id, pid, epoch, commit
	return r
}

func TestCoordinatorRefusesWhatItDoesNotOwnOrCannotServe(t *testing.T) {
	f := newFixture(t)
	empty := ""
	bad := initReq("tx", -1, -1)
	bad.TransactionTimeoutMillis = 900001
	noID := initReq("tx", -1, -1)
	noID.TransactionalID = &empty
	for name, tc := range map[string]struct {
		got, want int16
	}{
		"timeout above the max":          {f.c.InitProducerID(context.Background(), bad).ErrorCode, kerr.InvalidTransactionTimeout.Code},
		"empty transactional id":         {f.c.InitProducerID(context.Background(), noID).ErrorCode, kerr.InvalidRequest.Code},
		"only a producer id":             {f.c.InitProducerID(context.Background(), initReq("tx", 5, -1)).ErrorCode, kerr.InvalidRequest.Code},
		"AddPartitions to an unknown id": {addCode(t, f.c.AddPartitionsToTxn(context.Background(), addReq("nobody", 1, 0, "t", 0))), kerr.InvalidProducerIDMapping.Code},
		"EndTxn of an unknown id":        {f.c.EndTxn(context.Background(), endReq("nobody", 1, 0, true)).ErrorCode, kerr.InvalidProducerIDMapping.Code},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: code %d, want %d", name, tc.got, tc.want)
		}
	}
	f.c.Unload(0)
	if got := f.c.InitProducerID(context.Background(), initReq("tx", -1, -1)).ErrorCode; got != kerr.NotCoordinator.Code {
		t.Errorf("unloaded partition: code %d, want NOT_COORDINATOR", got)
	}
}

func TestCoordinatorCommitsATransactionAndANewLeaderReloadsIt(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	init := f.c.InitProducerID(ctx, initReq("tx", -1, -1))
	if init.ErrorCode != 0 || init.ProducerID != 1001 || init.ProducerEpoch != 0 {
		t.Fatalf("InitProducerID: %+v", init)
	}
	pid := init.ProducerID
	if c := addCode(t, f.c.AddPartitionsToTxn(ctx, addReq("tx", pid, 0, "out", 2, 1))); c != 0 {
		t.Fatalf("AddPartitionsToTxn: code %d", c)
	}
	offs := kmsg.NewPtrAddOffsetsToTxnRequest()
	offs.TransactionalID, offs.ProducerID, offs.ProducerEpoch, offs.Group = "tx", pid, 0, "g"
	if c := f.c.AddOffsetsToTxn(ctx, offs).ErrorCode; c != 0 {
		t.Fatalf("AddOffsetsToTxn: code %d", c)
	}
	if c := f.c.EndTxn(ctx, endReq("tx", pid, 0, true)).ErrorCode; c != 0 {
		t.Fatalf("EndTxn: code %d", c)
	}
	done := f.await(t, CompleteCommit)
	if done.ProducerID != pid || done.ProducerEpoch != 0 {
		t.Fatalf("completed: %+v", done)
	}
	ms := f.markers.all()
	want := []Partition{{OffsetsTopic, group.PartitionFor("g", 50)}, {"out", 1}, {"out", 2}}
	if len(ms) != 1 || !ms[0].commit || ms[0].producerID != pid || ms[0].epoch != 0 || len(ms[0].parts) != 3 {
		t.Fatalf("markers: %+v, want one commit of %v", ms, want)
	}
	for i, p := range want {
		if ms[0].parts[i] != p {
			t.Fatalf("marker partitions %v, want %v", ms[0].parts, want)
		}
	}
	// The retried EndTxn is answered without a new transition.
	if c := f.c.EndTxn(ctx, endReq("tx", pid, 0, true)).ErrorCode; c != 0 {
		t.Fatalf("retried EndTxn: code %d", c)
	}
	// Another broker loading the partition knows the transactional id.
	c2 := f.coordinator(t)
	if err := c2.Load(ctx, 0, 1, f.store, f.store.replay()); err != nil {
		t.Fatal(err)
	}
	m, ok := c2.Describe("tx")
	if !ok || m.State != CompleteCommit || m.ProducerID != pid || m.ProducerEpoch != 0 {
		t.Fatalf("reloaded: %+v, %v", m, ok)
	}
	if again := c2.InitProducerID(ctx, initReq("tx", -1, -1)); again.ErrorCode != 0 || again.ProducerID != pid || again.ProducerEpoch != 1 {
		t.Fatalf("InitProducerID after reload: %+v, want producer %d epoch 1", again, pid)
	}
}

// A producer that sends EndTxn and goes away (its connection closes, which ends the request's
// ctx) still gets its transaction committed, as Kafka serves a request whose client has gone:
// the write is the coordinator's, not bounded by the request.
func TestEndTxnWhoseClientHasGoneStillCommits(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	init := f.c.InitProducerID(ctx, initReq("tx", -1, -1))
	pid := init.ProducerID
	if c := addCode(t, f.c.AddPartitionsToTxn(ctx, addReq("tx", pid, 0, "out", 0))); c != 0 {
		t.Fatalf("AddPartitionsToTxn: code %d", c)
	}
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if c := f.c.EndTxn(gone, endReq("tx", pid, 0, true)).ErrorCode; c != 0 {
		t.Fatalf("EndTxn of a client that has gone: code %d, want 0", c)
	}
	if done := f.await(t, CompleteCommit); done.ProducerID != pid {
		t.Fatalf("completed: %+v", done)
	}
	if ms := f.markers.all(); len(ms) != 1 || !ms[0].commit {
		t.Fatalf("markers: %+v, want one commit", ms)
	}
}

func TestCoordinatorFencesAZombieAndAbortsItsOpenTransaction(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	zombie := f.c.InitProducerID(ctx, initReq("tx", -1, -1))
	if c := addCode(t, f.c.AddPartitionsToTxn(ctx, addReq("tx", zombie.ProducerID, 0, "out", 0))); c != 0 {
		t.Fatalf("AddPartitionsToTxn: code %d", c)
	}
	// A new instance of the application starts with the same transactional id.
	if c := f.c.InitProducerID(ctx, initReq("tx", -1, -1)).ErrorCode; c != kerr.ConcurrentTransactions.Code {
		t.Fatalf("InitProducerID over an open transaction: code %d, want CONCURRENT_TRANSACTIONS", c)
	}
	f.await(t, CompleteAbort)
	ms := f.markers.all()
	if len(ms) != 1 || ms[0].commit || ms[0].epoch != 1 {
		t.Fatalf("markers: %+v, want one abort at the fenced epoch 1", ms)
	}
	// The zombie can neither commit nor add to a transaction.
	if c := f.c.EndTxn(ctx, endReq("tx", zombie.ProducerID, 0, true)).ErrorCode; c != kerr.ProducerFenced.Code {
		t.Fatalf("zombie's EndTxn: code %d, want PRODUCER_FENCED", c)
	}
	fresh := f.c.InitProducerID(ctx, initReq("tx", -1, -1))
	if fresh.ErrorCode != 0 || fresh.ProducerID != zombie.ProducerID || fresh.ProducerEpoch != 2 {
		t.Fatalf("retried InitProducerID: %+v, want epoch 2", fresh)
	}
	if c := addCode(t, f.c.AddPartitionsToTxn(ctx, addReq("tx", zombie.ProducerID, 0, "out", 0))); c != kerr.ProducerFenced.Code {
		t.Fatalf("zombie's AddPartitionsToTxn: code %d, want PRODUCER_FENCED", c)
	}
}

func TestCoordinatorFailoverFinishesAPreparedCommit(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.markers.mu.Lock()
	f.markers.fail = errors.New("partition leader unreachable")
	f.markers.mu.Unlock()
	init := f.c.InitProducerID(ctx, initReq("tx", -1, -1))
	addCode(t, f.c.AddPartitionsToTxn(ctx, addReq("tx", init.ProducerID, 0, "out", 0)))
	if c := f.c.EndTxn(ctx, endReq("tx", init.ProducerID, 0, true)).ErrorCode; c != 0 {
		t.Fatalf("EndTxn: code %d", c)
	}
	f.await(t, PrepareCommit)
	if c := f.c.InitProducerID(ctx, initReq("tx", -1, -1)).ErrorCode; c != kerr.ConcurrentTransactions.Code {
		t.Fatalf("InitProducerID while the markers are pending: code %d, want CONCURRENT_TRANSACTIONS", c)
	}
	// This broker loses the partition; the next leader finishes the commit.
	f.c.Close()
	f.markers.mu.Lock()
	f.markers.fail = nil
	f.markers.mu.Unlock()
	c2 := f.coordinator(t)
	if err := c2.Load(ctx, 0, 1, f.store, f.store.replay()); err != nil {
		t.Fatal(err)
	}
	f.await(t, CompleteCommit)
	if ms := f.markers.all(); len(ms) != 1 || !ms[0].commit || ms[0].coordinatorEpoch != 1 {
		t.Fatalf("markers after failover: %+v, want one commit of coordinator epoch 1", ms)
	}
}

// TestADeposedCoordinatorStopsWritingMarkersOnceFenced: a partition answers the markers of a
// prepared commit with TRANSACTION_COORDINATOR_FENCED (a newer coordinator of the transactional
// id wrote the producer's markers there); the coordinator stops writing them by itself, without
// persisting the completion, as Kafka's TransactionMarkerRequestCompletionHandler does: the new
// coordinator owns the transaction.
func TestADeposedCoordinatorStopsWritingMarkersOnceFenced(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.markers.mu.Lock()
	f.markers.fail = fmt.Errorf("out-0: %w", kerr.TransactionCoordinatorFenced)
	f.markers.mu.Unlock()
	init := f.c.InitProducerID(ctx, initReq("tx", -1, -1))
	addCode(t, f.c.AddPartitionsToTxn(ctx, addReq("tx", init.ProducerID, 0, "out", 0)))
	if c := f.c.EndTxn(ctx, endReq("tx", init.ProducerID, 0, true)).ErrorCode; c != 0 {
		t.Fatalf("EndTxn: code %d", c)
	}
	// The marker writer goroutine ends on its own: the partition is still loaded.
	stopped := make(chan struct{})
	go func() { f.c.background.Wait(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		f.markers.mu.Lock()
		calls := f.markers.calls
		f.markers.mu.Unlock()
		t.Fatalf("the fenced coordinator still writes its markers after %d attempts", calls)
	}
	f.markers.mu.Lock()
	calls := f.markers.calls
	f.markers.mu.Unlock()
	if calls != 1 {
		t.Fatalf("%d attempts to write the markers, want 1", calls)
	}
	if m, _ := f.c.Describe("tx"); m.State != PrepareCommit {
		t.Fatalf("state of the fenced transaction: %s, want PrepareCommit (the new coordinator completes it)", m.State)
	}
	for _, r := range f.store.snapshot() {
		if m, _, _ := Decode(r.Key, r.Value); m.State == CompleteCommit {
			t.Fatal("the fenced coordinator persisted CompleteCommit")
		}
	}
}

func TestCoordinatorKeepsItsStateWhenTheStoreFails(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	init := f.c.InitProducerID(ctx, initReq("tx", -1, -1))
	f.store.mu.Lock()
	f.store.fail = group.ErrNotLeader
	f.store.mu.Unlock()
	if c := addCode(t, f.c.AddPartitionsToTxn(ctx, addReq("tx", init.ProducerID, 0, "out", 0))); c != kerr.NotCoordinator.Code {
		t.Fatalf("AddPartitionsToTxn with a failing store: code %d, want NOT_COORDINATOR", c)
	}
	if m, _ := f.c.Describe("tx"); m.State != Empty {
		t.Fatalf("state after a failed append: %s, want Empty", m.State)
	}
}

func TestCoordinatorAbortsATransactionPastItsTimeout(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	init := f.c.InitProducerID(ctx, initReq("tx", -1, -1))
	addCode(t, f.c.AddPartitionsToTxn(ctx, addReq("tx", init.ProducerID, 0, "out", 0)))
	f.advance(60 * time.Second)
	f.c.AbortTimedOut(ctx)
	if m, _ := f.c.Describe("tx"); m.State != Ongoing {
		t.Fatalf("at its timeout: %s, want Ongoing", m.State)
	}
	f.advance(time.Millisecond)
	f.c.AbortTimedOut(ctx)
	f.await(t, CompleteAbort)
	if c := f.c.EndTxn(ctx, endReq("tx", init.ProducerID, 0, true)).ErrorCode; c != kerr.ProducerFenced.Code {
		t.Fatalf("EndTxn of the timed-out producer: code %d, want PRODUCER_FENCED", c)
	}
}
