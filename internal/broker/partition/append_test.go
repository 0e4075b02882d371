package partition

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kafkaguard/kafkaguard/internal/broker/log"
	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
	"github.com/kafkaguard/kafkaguard/internal/broker/records"
)

// stuckDisk is a disk whose segment fsyncs block, once armed, until released: an append then
// holds wherever it fsyncs, as on a slow disk.
type stuckDisk struct {
	*log.Disk
	mu      sync.Mutex
	armed   bool
	entered chan struct{} // closed once the armed fsync blocks
	release chan struct{} // closed to let it go
}

// withStuckDisk makes f's replicas use a stuckDisk, with fsyncs on every append.
func (f *fixture) withStuckDisk(t *testing.T) *stuckDisk {
	d := &stuckDisk{Disk: log.NewDisk()}
	d.SetBeforeSync(func(path string) {
		if filepath.Ext(path) != ".log" {
			return
		}
		d.mu.Lock()
		armed, entered, release := d.armed, d.entered, d.release
		d.armed = false
		d.mu.Unlock()
		if armed {
			close(entered)
			<-release
		}
	})
	f.cfg.Log.Disk, f.cfg.Log.FlushMessages = d.Disk, 1
	return d
}

// arm makes the next segment fsync block until unblock.
func (d *stuckDisk) arm() {
	d.mu.Lock()
	d.armed, d.entered, d.release = true, make(chan struct{}), make(chan struct{})
	d.mu.Unlock()
}

// blocked waits until the armed fsync has been reached.
func (d *stuckDisk) blocked(t *testing.T) {
	t.Helper()
	d.mu.Lock()
	entered := d.entered
	d.mu.Unlock()
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the append never reached its fsync")
	}
}

// unblock lets the blocked fsync (if any) go.
func (d *stuckDisk) unblock() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.release != nil {
		select {
		case <-d.release:
		default:
			close(d.release)
		}
	}
}

// within runs fn and fails the test if it does not return within a few seconds: what it does
// must not wait for the stuck fsync.
func within(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatalf("%s waited behind an append's fsync", what)
	}
}

type appendOutcome struct {
	res AppendResult
	err error
}

// appendAsync appends b with acks on another goroutine.
func appendAsync(t *testing.T, r *Replica, b []byte, acks int16) <-chan appendOutcome {
	out := make(chan appendOutcome, 1)
	go func() {
		res, err := r.Append(t.Context(), b, acks)
		out <- appendOutcome{res, err}
	}()
	return out
}

// appendStuckInFsync makes f's replica leader of ISR {1, 2} on a stuckDisk, appends 2 records
// (offsets 0-1), and starts an acks=all append of b that blocks in its fsync.
func (f *fixture) appendStuckInFsync(t *testing.T, b []byte) (*Replica, *stuckDisk, <-chan appendOutcome) {
	t.Helper()
	d := f.withStuckDisk(t)
	r := f.leader(t, 1, 2)
	t.Cleanup(d.unblock) // before the replica's Close, which an old-style append would block
	if _, err := r.Append(t.Context(), batch(2, plain), 1); err != nil {
		t.Fatal(err)
	}
	d.arm()
	out := appendAsync(t, r, b, -1)
	d.blocked(t)
	return r, d, out
}

func TestFetchesAndFollowerFetchesCompleteWhileAnAppendWaitsForItsFsync(t *testing.T) {
	f := newFixture(t, 2)
	r, d, out := f.appendStuckInFsync(t, batch(1, plain))

	// The follower reports offset 2: the high watermark moves to 2, and no further, although
	// the append in flight has written offset 2 to the file (unsynced, unpublished).
	within(t, "a follower fetch", func() {
		if res := fetch(t, r, 2, 2); len(res.Records) != 0 || res.LogEndOffset != 2 {
			t.Errorf("follower fetch during the append: %d bytes, log end %d; want none, 2", len(res.Records), res.LogEndOffset)
		}
	})
	within(t, "a consumer fetch", func() {
		if n := consume(t, r, 0); n != 2 {
			t.Errorf("consumer read %d records, want the 2 committed", n)
		}
	})
	within(t, "State", func() {
		if st := r.State(); st.HW != 2 || st.LEO != 2 {
			t.Errorf("during the append: HW %d LEO %d, want 2 and 2", st.HW, st.LEO)
		}
	})
	select {
	case o := <-out:
		t.Fatalf("acks=all answered (%+v) before its fsync", o)
	default:
	}

	d.unblock()
	for deadline := time.Now().Add(5 * time.Second); r.State().LEO != 3; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the append was not published after its fsync")
		}
	}
	fetch(t, r, 2, 3)
	if o := <-out; o.err != nil || o.res.BaseOffset != 2 {
		t.Fatalf("append: %+v; want offset 2", o)
	}
	if hw := r.HighWatermark(); hw != 3 {
		t.Fatalf("high watermark %d, want 3", hw)
	}
}

func TestDuplicateArrivingDuringTheFirstAppendsFsyncIsAnsweredAsADuplicate(t *testing.T) {
	f := newFixture(t, 1)
	d := f.withStuckDisk(t)
	r := f.leader(t, 1)
	b := func() []byte { return batch(3, records.Producer{ID: 7, Epoch: 0, Sequence: 0}) }
	d.arm()
	defer d.unblock()
	first := appendAsync(t, r, b(), 1)
	d.blocked(t)
	retry := appendAsync(t, r, b(), 1)
	// The retry cannot be told apart from the first before the first is written; it must
	// not be written a second time meanwhile.
	select {
	case o := <-retry:
		t.Fatalf("retry answered (%+v) while the first copy was being appended", o)
	case <-time.After(20 * time.Millisecond):
	}
	d.unblock()
	o1, o2 := <-first, <-retry
	if o1.err != nil || o1.res.BaseOffset != 0 || o1.res.Duplicate {
		t.Fatalf("first append: %+v, want offset 0", o1)
	}
	if o2.err != nil || o2.res.BaseOffset != 0 || !o2.res.Duplicate {
		t.Fatalf("retry: %+v, want a duplicate of offset 0", o2)
	}
	if leo := r.State().LEO; leo != 3 {
		t.Fatalf("log end %d, want 3: the batch was written twice", leo)
	}
}

func TestLeaderChangeDuringAnAppendsFsync(t *testing.T) {
	f := newFixture(t, 1)
	p := records.Producer{ID: 7, Epoch: 0, Sequence: 0}
	r, d, out := f.appendStuckInFsync(t, batch(1, p))

	// The controller moves leadership to 2 while the batch is being written: the change does
	// not wait for the fsync, and the produce fails as one the leader change caught.
	within(t, "a leader change", func() {
		if !r.Apply(meta.Partition{Replicas: []int32{1, 2, 3}, ISR: []int32{2}, Leader: 2, LeaderEpoch: 2, Epoch: 2}) {
			t.Error("Apply did not report the replica became a follower")
		}
	})
	// The new leader never had offset 2: the follower's truncation waits for the append and
	// then removes it, with its producer state.
	truncated := make(chan error, 1)
	go func() { truncated <- r.TruncateTo(2, 2) }()
	d.unblock()
	if o := <-out; !errors.Is(o.err, kerr.NotLeaderForPartition) {
		t.Fatalf("acks=all across a leader change: %+v, want NOT_LEADER_OR_FOLLOWER", o)
	}
	if err := <-truncated; err != nil {
		t.Fatal(err)
	}
	if st := r.State(); st.LEO != 2 {
		t.Fatalf("log end %d after the truncation, want 2", st.LEO)
	}
	// Leader again: the retry of the truncated batch is written, not answered as a duplicate.
	r.Apply(meta.Partition{Replicas: []int32{1, 2, 3}, ISR: []int32{1}, Leader: 1, LeaderEpoch: 3, Epoch: 3})
	res, err := r.Append(t.Context(), batch(1, p), 1)
	if err != nil || res.Duplicate || res.BaseOffset != 2 {
		t.Fatalf("retry after the truncation: %+v, %v; want written at offset 2", res, err)
	}
}

func TestCloseDuringAnAppendsFsync(t *testing.T) {
	f := newFixture(t, 1)
	d := f.withStuckDisk(t)
	r := f.leader(t, 1, 2)
	d.arm()
	defer d.unblock()
	out := appendAsync(t, r, batch(1, plain), -1)
	d.blocked(t)
	closed := make(chan error, 1)
	go func() { closed <- r.Close() }()
	d.unblock()
	if o := <-out; !errors.Is(o.err, kerr.NotLeaderForPartition) {
		t.Fatalf("acks=all across Close: %+v, want NOT_LEADER_OR_FOLLOWER", o)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := r.Append(context.Background(), batch(1, plain), 1); !errors.Is(err, kerr.NotLeaderForPartition) {
		t.Fatalf("append after Close: %v, want NOT_LEADER_OR_FOLLOWER", err)
	}
}
