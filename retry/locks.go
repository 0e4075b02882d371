package retry

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// lockKey is a key of one original topic.
type lockKey struct {
	topic string
	key   string
}

// chain is the state of one failed record (one Origin) within one
// partition of the retry topic: the offset of its newest marker, and the
// offset of the resolution that ended it (-1 while it is pending).
type chain struct {
	key        lockKey
	keyed      bool
	latest     int64
	resolvedAt int64
}

func (c *chain) pending() bool { return c.resolvedAt < c.latest }

type lockPart struct {
	next   int64 // next offset the follower reads
	chains map[Origin]*chain
	// gcAt is a committed offset of the Job's group not applied yet: the
	// records finished below it are forgotten once the follower has read
	// up to gcEnd, the end of the partition listed after the commit was
	// read (see refreshCommitted). Valid while gcPending.
	gcAt, gcEnd int64
	gcPending   bool
}

// KeyLocks is the set of records that have a pending failure marker on one
// retry topic, and so the set of keys whose later records must wait behind
// them to keep key order. It is rebuilt when created by reading the retry
// topic from the Job group's committed offsets to the end, then kept current
// by following the topic: markers lock a key, KindResolved records and the
// group's committed offsets unlock it (a commit only once the topic has been
// read up to where it ended when the commit was read, so that a marker the
// Job wrote to replace a committed one is seen first).
//
// One KeyLocks may be shared by the Parker and the Job of a process (see
// KeyOrder). A Job also uses its own, internal KeyLocks to recognise markers
// that a later marker of the same record superseded. KeyLocks is safe for
// concurrent use.
type KeyLocks struct {
	topic string
	group string
	// committed makes the locks read only committed transactions and count
	// the end of a partition at its last stable offset (ExactlyOnce).
	committed bool
	log       *slog.Logger
	refresh   time.Duration
	cl        *kgo.Client // follower
	adm       *kadm.Client
	admCl     *kgo.Client

	mu        sync.Mutex
	parts     map[int32]*lockPart
	keys      map[lockKey]map[Origin]struct{}
	changed   chan struct{} // closed and replaced whenever the follower advances
	err       error         // why the follower stopped
	listeners map[int]func(lockKey)
	nextID    int

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// NewKeyLocks reads the retry topic (Topic or RetryTopic) from the committed
// offsets of the Job's group (Group) to its end, then keeps following it
// until Close.
func NewKeyLocks(ctx context.Context, opts ...LocksOpt) (*KeyLocks, error) {
	c := newConfig(opts)
	if err := c.validate(true); err != nil {
		return nil, err
	}
	return openKeyLocks(ctx, &c)
}

func openKeyLocks(ctx context.Context, c *config) (*KeyLocks, error) {
	l := &KeyLocks{
		topic:     c.fixedRetryTopic(),
		group:     c.groupName(),
		committed: c.exactlyOnce,
		log:       c.logger,
		refresh:   c.refreshInterval,
		parts:     map[int32]*lockPart{},
		keys:      map[lockKey]map[Origin]struct{}{},
		changed:   make(chan struct{}),
		done:      make(chan struct{}),
	}
	admCl, err := kgo.NewClient(c.clientOpts...)
	if err != nil {
		return nil, fmt.Errorf("retry: key locks client: %w", err)
	}
	l.admCl, l.adm = admCl, kadm.NewClient(admCl)
	starts, ends, err := l.offsets(ctx)
	if err != nil {
		admCl.Close()
		return nil, err
	}
	consume := map[int32]kgo.Offset{}
	for p, s := range starts {
		l.parts[p] = &lockPart{next: s, chains: map[Origin]*chain{}}
		consume[p] = kgo.NewOffset().At(s)
	}
	fopts := append(append([]kgo.Opt(nil), c.clientOpts...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{l.topic: consume}),
		kgo.FetchMaxWait(500*time.Millisecond))
	if l.committed {
		// Control records are kept so that the follower's position passes
		// the commit and abort markers up to the last stable offset.
		fopts = append(fopts, kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	}
	cl, err := kgo.NewClient(fopts...)
	if err != nil {
		admCl.Close()
		return nil, fmt.Errorf("retry: key locks client: %w", err)
	}
	l.cl = cl
	runCtx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	go l.follow(runCtx)
	if err := l.waitFor(ctx, ends); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// offsets returns where following starts (the group's committed offset, or
// the log start) and the current end of every partition.
func (l *KeyLocks) offsets(ctx context.Context) (starts, ends map[int32]int64, err error) {
	endOffs, err := l.ends(ctx)
	if err == nil {
		err = endOffs.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("retry: listing end offsets of %s: %w", l.topic, err)
	}
	startOffs, err := l.adm.ListStartOffsets(ctx, l.topic)
	if err == nil {
		err = startOffs.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("retry: listing start offsets of %s: %w", l.topic, err)
	}
	committed, err := l.adm.FetchOffsets(ctx, l.group)
	if err != nil {
		return nil, nil, fmt.Errorf("retry: fetching committed offsets of group %s: %w", l.group, err)
	}
	starts, ends = map[int32]int64{}, map[int32]int64{}
	endOffs.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
	startOffs.Each(func(o kadm.ListedOffset) {
		s := o.Offset
		if c, ok := committed.Lookup(l.topic, o.Partition); ok && c.Err == nil && c.At > s {
			s = c.At
		}
		starts[o.Partition] = s
	})
	return starts, ends, nil
}

func (l *KeyLocks) follow(ctx context.Context) {
	defer close(l.done)
	refresh := time.NewTicker(l.refresh)
	defer refresh.Stop()
	polled := make(chan kgo.Fetches)
	go func() {
		defer close(polled)
		for {
			fs := l.cl.PollFetches(ctx)
			if ctx.Err() != nil || fs.IsClientClosed() {
				return
			}
			select {
			case polled <- fs:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case fs, ok := <-polled:
			if !ok {
				return
			}
			fs.EachError(func(t string, p int32, err error) {
				l.log.Debug("retry: key locks fetch", "topic", t, "partition", p, "err", err)
			})
			var unlocked []lockKey
			l.mu.Lock()
			fs.EachRecord(func(r *kgo.Record) { unlocked = append(unlocked, l.applyLocked(r)...) })
			unlocked = append(unlocked, l.gcCaughtUpLocked()...)
			close(l.changed)
			l.changed = make(chan struct{})
			l.mu.Unlock()
			l.notify(unlocked)
		case <-refresh.C:
			l.refreshCommitted(ctx)
		}
	}
}

// refreshCommitted reads the Job group's committed offsets and then the end
// of every partition, and forgets the records finished below a commit once
// the follower has read up to that end. A commit past a record's marker does
// not end the record when the Job replaced the marker by a later one (a
// re-park): that later marker was written before the commit, so it lies
// below the end listed after it, and it must have been read before the
// commit may unlock the record's key.
func (l *KeyLocks) refreshCommitted(ctx context.Context) {
	committed, err := l.adm.FetchOffsets(ctx, l.group)
	if err != nil {
		l.log.Debug("retry: key locks refresh", "group", l.group, "err", err)
		return
	}
	ends, err := l.ends(ctx)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		l.log.Debug("retry: key locks refresh", "topic", l.topic, "err", err)
		return
	}
	l.mu.Lock()
	committed.Each(func(o kadm.OffsetResponse) {
		if o.Topic != l.topic || o.Err != nil {
			return
		}
		end, ok := ends.Lookup(l.topic, o.Partition)
		if lp := l.part(o.Partition); ok && end.Err == nil && !lp.gcPending {
			lp.gcAt, lp.gcEnd, lp.gcPending = o.At, end.Offset, true
		}
	})
	unlocked := l.gcCaughtUpLocked()
	l.mu.Unlock()
	l.notify(unlocked)
}

// gcCaughtUpLocked applies the pending commit of every partition the
// follower has read up to the end listed with it.
func (l *KeyLocks) gcCaughtUpLocked() []lockKey {
	var unlocked []lockKey
	for p, lp := range l.parts {
		if lp.gcPending && lp.next >= lp.gcEnd {
			lp.gcPending = false
			unlocked = append(unlocked, l.gcLocked(p, lp.gcAt)...)
		}
	}
	return unlocked
}

// applyLocked applies one record read from the retry topic.
func (l *KeyLocks) applyLocked(r *kgo.Record) []lockKey {
	p := l.part(r.Partition)
	if r.Offset >= p.next {
		p.next = r.Offset + 1
	}
	m, err := ParseMarker(r)
	if err != nil {
		return nil
	}
	switch m.Kind {
	case KindMarker:
		l.observeLocked(r.Partition, r.Offset, m)
	case KindResolved:
		return l.resolveLocked(r.Partition, r.Offset, m.Origin)
	}
	return nil
}

func (l *KeyLocks) part(p int32) *lockPart {
	lp := l.parts[p]
	if lp == nil {
		lp = &lockPart{chains: map[Origin]*chain{}}
		l.parts[p] = lp
	}
	return lp
}

func keyOf(m *Marker) (lockKey, bool) {
	return lockKey{m.Topic, string(m.Key)}, m.Key != nil
}

// observe records the marker of m at offset off of retry partition p, and
// reports whether it is its record's newest marker and still pending: false
// means a later marker or a resolution has superseded it.
func (l *KeyLocks) observe(p int32, off int64, m *Marker) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.observeLocked(p, off, m)
}

func (l *KeyLocks) observeLocked(p int32, off int64, m *Marker) bool {
	lp := l.part(p)
	c := lp.chains[m.Origin]
	if c == nil {
		k, keyed := keyOf(m)
		c = &chain{key: k, keyed: keyed, latest: off, resolvedAt: -1}
		lp.chains[m.Origin] = c
		l.lockLocked(c, m.Origin)
		return true
	}
	if off <= c.resolvedAt || off < c.latest {
		return false
	}
	c.latest = off
	c.key, c.keyed = keyOf(m)
	l.lockLocked(c, m.Origin)
	return true
}

func (l *KeyLocks) lockLocked(c *chain, o Origin) {
	if !c.keyed || !c.pending() {
		return
	}
	set := l.keys[c.key]
	if set == nil {
		set = map[Origin]struct{}{}
		l.keys[c.key] = set
	}
	set[o] = struct{}{}
}

func (l *KeyLocks) unlockLocked(c *chain, o Origin) bool {
	if !c.keyed {
		return false
	}
	set := l.keys[c.key]
	if _, ok := set[o]; !ok {
		return false
	}
	delete(set, o)
	if len(set) == 0 {
		delete(l.keys, c.key)
	}
	return true
}

// live reports whether the marker at offset off of retry partition p is
// still its record's newest and pending.
func (l *KeyLocks) live(p int32, off int64, o Origin) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	lp := l.parts[p]
	if lp == nil {
		return true
	}
	c := lp.chains[o]
	return c == nil || (off >= c.latest && off > c.resolvedAt)
}

// resolve ends the record o in retry partition p: every marker of it up to
// offset off is finished.
func (l *KeyLocks) resolve(p int32, off int64, o Origin) {
	l.mu.Lock()
	unlocked := l.resolveLocked(p, off, o)
	l.mu.Unlock()
	l.notify(unlocked)
}

func (l *KeyLocks) resolveLocked(p int32, off int64, o Origin) []lockKey {
	lp := l.part(p)
	c := lp.chains[o]
	if c == nil {
		// A tombstone: a marker of o at or below off read later is finished.
		lp.chains[o] = &chain{latest: -1, resolvedAt: off}
		return nil
	}
	if off > c.resolvedAt {
		c.resolvedAt = off
	}
	if !c.pending() && l.unlockLocked(c, o) {
		return []lockKey{c.key}
	}
	return nil
}

// gc forgets the records of retry partition p whose every marker and
// resolution lies below the committed offset: they are finished. The caller
// must have seen every marker written before the commit (the Job that
// committed observes its own re-parks before it commits past them).
func (l *KeyLocks) gc(p int32, committed int64) {
	l.mu.Lock()
	unlocked := l.gcLocked(p, committed)
	l.mu.Unlock()
	l.notify(unlocked)
}

func (l *KeyLocks) gcLocked(p int32, committed int64) []lockKey {
	var unlocked []lockKey
	lp := l.part(p)
	for o, c := range lp.chains {
		if c.latest < committed && c.resolvedAt < committed {
			if l.unlockLocked(c, o) {
				unlocked = append(unlocked, c.key)
			}
			delete(lp.chains, o)
		}
	}
	return unlocked
}

// head returns the earliest pending record of a key (by original
// partition, then offset).
func (l *KeyLocks) head(k lockKey) (Origin, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var h Origin
	found := false
	for o := range l.keys[k] {
		if !found || o.before(h) {
			h, found = o, true
		}
	}
	return h, found
}

// onUnlock registers fn to be called with every key whose earliest pending
// record changed because one ended, and returns a function that unregisters
// it.
func (l *KeyLocks) onUnlock(fn func(lockKey)) (stop func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.listeners == nil {
		l.listeners = map[int]func(lockKey){}
	}
	id := l.nextID
	l.nextID++
	l.listeners[id] = fn
	return func() {
		l.mu.Lock()
		delete(l.listeners, id)
		l.mu.Unlock()
	}
}

func (l *KeyLocks) notify(keys []lockKey) {
	if len(keys) == 0 {
		return
	}
	l.mu.Lock()
	ls := make([]func(lockKey), 0, len(l.listeners))
	for _, fn := range l.listeners {
		ls = append(ls, fn)
	}
	l.mu.Unlock()
	for _, k := range keys {
		for _, fn := range ls {
			fn(k)
		}
	}
}

// Locked reports whether a record of topic with key has a pending marker, so
// that a later record of the key must be parked behind it. A nil key is never
// locked.
func (l *KeyLocks) Locked(topic string, key []byte) bool {
	if key == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys[lockKey{topic, string(key)}]) > 0
}

// LockedKeys returns the number of keys that have a pending marker.
func (l *KeyLocks) LockedKeys() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}

// Pending returns the number of records with a pending marker known so far.
func (l *KeyLocks) Pending() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, lp := range l.parts {
		for _, c := range lp.chains {
			if c.pending() {
				n++
			}
		}
	}
	return n
}

// Topic returns the retry topic the locks follow.
func (l *KeyLocks) Topic() string { return l.topic }

// Sync waits until the locks have read the retry topic up to its end as of
// the call, so that every marker written before Sync is reflected. Call it
// when a consumer is assigned partitions, before it runs their records.
func (l *KeyLocks) Sync(ctx context.Context) error {
	endOffs, err := l.ends(ctx)
	if err == nil {
		err = endOffs.Error()
	}
	if err != nil {
		return fmt.Errorf("retry: listing end offsets of %s: %w", l.topic, err)
	}
	ends := map[int32]int64{}
	endOffs.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
	return l.waitFor(ctx, ends)
}

// ends lists the end of every partition of the topic: the high watermark,
// or the last stable offset when the locks read committed transactions only.
func (l *KeyLocks) ends(ctx context.Context) (kadm.ListedOffsets, error) {
	if l.committed {
		return l.adm.ListCommittedOffsets(ctx, l.topic)
	}
	return l.adm.ListEndOffsets(ctx, l.topic)
}

func (l *KeyLocks) waitFor(ctx context.Context, ends map[int32]int64) error {
	for {
		l.mu.Lock()
		behind := false
		for p, end := range ends {
			if lp := l.parts[p]; lp != nil && lp.next < end {
				behind = true
			}
		}
		ch, err := l.changed, l.err
		l.mu.Unlock()
		if !behind {
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case <-ch:
		case <-l.done:
			return fmt.Errorf("retry: key locks of %s: %w", l.topic, ErrClosed)
		case <-ctx.Done():
			return fmt.Errorf("retry: syncing key locks of %s: %w", l.topic, ctx.Err())
		}
	}
}

// Close stops following the retry topic. Locked keeps answering from what
// was read.
func (l *KeyLocks) Close() {
	l.once.Do(func() {
		if l.cancel != nil {
			l.cancel()
			<-l.done
		}
		if l.cl != nil {
			l.cl.Close()
		}
		l.admCl.Close()
		l.mu.Lock()
		if l.err == nil {
			l.err = ErrClosed
		}
		l.mu.Unlock()
	})
}
