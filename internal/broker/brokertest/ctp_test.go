package brokertest_test

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/kafkatest"
)

// Consume-transform-produce (KIP-98, KIP-447) against the bundled cluster: a copier reads an
// input topic in a group and writes each record, transformed, to an output topic, committing its
// group offsets in the same transaction as its output.

const ctpEnd = "zz-end"

// ctpCluster starts 3 brokers with an input topic of n records over 2 partitions and an empty
// output topic of 3 partitions, both RF 3 with min.insync.replicas 2.
func ctpCluster(ctx context.Context, t *testing.T, in, out string, n int) *kafkatest.Cluster {
	t.Helper()
	c := kafkatest.NewCluster(t, kafkatest.Brokers(3), kafkatest.BrokerConfig("min.insync.replicas", "2"))
	if err := c.CreateTopic(ctx, in, 2, 3, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateTopic(ctx, out, 3, 3, nil); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.DefaultProduceTopic(in),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var rs []*kgo.Record
	for _, v := range values("in", n) {
		rs = append(rs, &kgo.Record{Value: []byte(v)})
	}
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return c
}

// ctpSession is a franz-go GroupTransactSession copying in to out in group, with the
// transactional id group-copier.
func ctpSession(t *testing.T, c *kafkatest.Cluster, group, in, out string) *kgo.GroupTransactSession {
	t.Helper()
	return ctpSessionOf(t, c, group+"-copier", group, in, out)
}

// ctpSessionOf is ctpSession with the given transactional id.
func ctpSessionOf(t *testing.T, c *kafkatest.Cluster, id, group, in, out string) *kgo.GroupTransactSession {
	t.Helper()
	s, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(c.Bootstrap()...),
		kgo.TransactionalID(id), kgo.ConsumerGroup(group), kgo.ConsumeTopics(in),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.RequireStableFetchOffsets(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DefaultProduceTopic(out),
		kgo.TransactionTimeout(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// copyOnce runs one transaction of s: the records of one poll (at most 25), transformed to out,
// ended with end. It returns the input values copied and whether the transaction committed.
func copyOnce(ctx context.Context, t *testing.T, s *kgo.GroupTransactSession, end kgo.TransactionEndTry) ([]string, bool) {
	t.Helper()
	fs := s.PollRecords(ctx, 25)
	if ctx.Err() != nil {
		t.Fatalf("poll: %v", ctx.Err())
	}
	fs.EachError(func(tp string, p int32, err error) { t.Logf("fetch %s-%d: %v (retried)", tp, p, err) })
	if err := s.Begin(); err != nil {
		t.Fatal(err)
	}
	var copied []string
	var rs []*kgo.Record
	fs.EachRecord(func(r *kgo.Record) {
		copied = append(copied, string(r.Value))
		rs = append(rs, &kgo.Record{Value: []byte("out-" + string(r.Value))})
	})
	if err := s.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Logf("produce: %v (the transaction aborts)", err)
	}
	committed, err := s.End(ctx, end)
	if err != nil {
		t.Fatalf("end transaction: %v", err)
	}
	return copied, committed
}

// copyAll runs committed transactions of s until n records are copied, and returns them. If
// restart is not nil, s is closed once half of them are, and the copy goes on with the session
// restart returns.
func copyAll(ctx context.Context, t *testing.T, s *kgo.GroupTransactSession, n int, restart func() *kgo.GroupTransactSession) []string {
	t.Helper()
	var copied []string
	txns := 0
	for ; len(copied) < n; txns++ {
		vs, committed := copyOnce(ctx, t, s, kgo.TryCommit)
		if committed {
			copied = append(copied, vs...)
		}
		if restart != nil && len(copied) >= n/2 {
			s.Close()
			s, restart = restart(), nil
		}
		if txns > 200 {
			t.Fatalf("copied %d of %d records in %d transactions", len(copied), n, txns)
		}
	}
	t.Logf("copied %d records in %d transactions", len(copied), txns)
	return copied
}

// readAllOutput appends a non-transactional end mark (new at each call) to each of out's
// partitions and reads out with the isolation level until every mark arrived: what it returns,
// sorted, is everything readable before the marks, without the marks of any call.
func readAllOutput(ctx context.Context, t *testing.T, c *kafkatest.Cluster, out string, partitions int, level kgo.IsolationLevel) []string {
	t.Helper()
	got := readOutputInOrder(ctx, t, c, out, partitions, level)
	slices.Sort(got)
	return got
}

// readOutputInOrder is readAllOutput in the order the records arrived: offset order within
// each partition.
func readOutputInOrder(ctx context.Context, t *testing.T, c *kafkatest.Cluster, out string, partitions int, level kgo.IsolationLevel) []string {
	t.Helper()
	p, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.DefaultProduceTopic(out),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	mark := fmt.Sprintf("%s-%d", ctpEnd, time.Now().UnixNano())
	for i := range partitions {
		if err := p.ProduceSync(ctx, &kgo.Record{Partition: int32(i), Value: []byte(mark)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.ConsumeTopics(out),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(level))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got []string
	for marks := 0; marks < partitions; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d end marks before the deadline; read %d records", marks, partitions, len(got))
		}
		fs.EachError(func(tp string, p int32, err error) { t.Logf("fetch %s-%d: %v (retried)", tp, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			switch v := string(r.Value); {
			case v == mark:
				marks++
			case !strings.HasPrefix(v, ctpEnd):
				got = append(got, v)
			}
		})
	}
	return got
}

func transformed(in []string) []string {
	out := make([]string, len(in))
	for i, v := range in {
		out[i] = "out-" + v
	}
	slices.Sort(out)
	return out
}

// TestFranzGoGroupTransactSessionCopiesExactlyOnce copies a 300-record input with franz-go's
// GroupTransactSession in committed transactions, replacing the copier half-way through:
// read_committed, the output is the input
// transformed, each record once, and the group's committed offsets are the input's end offsets.
func TestFranzGoGroupTransactSessionCopiesExactlyOnce(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const in, out, group, n = "ctp-in", "ctp-out", "ctp", 300
	c := ctpCluster(ctx, t, in, out, n)
	s := ctpSession(t, c, group, in, out)

	// Half-way, a new copier of the same group and transactional id resumes from the committed
	// offsets.
	copied := copyAll(ctx, t, s, n, func() *kgo.GroupTransactSession { return ctpSession(t, c, group, in, out) })
	if got, want := len(copied), n; got != want {
		t.Fatalf("the session copied %d records, want %d", got, want)
	}
	checkOutputOnce(ctx, t, c, group, in, out, n)
}

// TestFranzGoTwoGroupTransactSessionsCopyExactlyOnce runs two copiers of one group
// (transactional ids of their own), in transactions of at most 10 records: the second joins once
// the first has copied a quarter of the input, so the group rebalances while the first is
// copying and the second starts its partition from offsets the first may still be committing
// (RequireStable, KIP-447). The read_committed output is the input transformed, each record
// once, and the group's committed offsets are the input's end.
func TestFranzGoTwoGroupTransactSessionsCopyExactlyOnce(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const in, out, group, n = "ctp-two-in", "ctp-two-out", "ctp-two", 400
	c := ctpCluster(ctx, t, in, out, n)
	var (
		total atomic.Int64    // records copied in committed transactions
		txns  atomic.Int64    // committed transactions
		each  [2]atomic.Int64 // records each copier copied in committed transactions
		wg    sync.WaitGroup
		errs  = make(chan error, 2)
	)
	quarter := make(chan struct{}) // closed once a quarter of the input is copied
	var quarterOnce sync.Once
	copier := func(i int, s *kgo.GroupTransactSession) {
		defer wg.Done()
		for total.Load() < n && ctx.Err() == nil {
			pctx, pcancel := context.WithTimeout(ctx, 200*time.Millisecond)
			fs := s.PollRecords(pctx, 10)
			pcancel()
			var rs []*kgo.Record
			fs.EachRecord(func(r *kgo.Record) { rs = append(rs, &kgo.Record{Value: []byte("out-" + string(r.Value))}) })
			if len(rs) == 0 {
				continue
			}
			if err := s.Begin(); err != nil {
				errs <- err
				return
			}
			_ = s.ProduceSync(ctx, rs...) // a failed produce aborts the transaction at End
			committed, err := s.End(ctx, kgo.TryCommit)
			if err != nil {
				errs <- fmt.Errorf("copier %d: end transaction: %w", i, err)
				return
			}
			if committed {
				if total.Add(int64(len(rs))) >= n/4 {
					quarterOnce.Do(func() { close(quarter) })
				}
				each[i].Add(int64(len(rs)))
				txns.Add(1)
			}
		}
	}
	wg.Add(2)
	go copier(0, ctpSessionOf(t, c, group+"-copier-0", group, in, out))
	// The second copier joins once the first owns both partitions and is copying.
	select {
	case <-quarter:
	case <-ctx.Done():
		t.Fatal("the first copier copied nothing")
	}
	go copier(1, ctpSessionOf(t, c, group+"-copier-1", group, in, out))
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatalf("copied %d of %d records before the deadline", total.Load(), n)
	}
	t.Logf("copied %d records in %d committed transactions (%d and %d by each copier)", total.Load(), txns.Load(), each[0].Load(), each[1].Load())
	checkOutputOnce(ctx, t, c, group, in, out, n)
}

// TestFranzGoGroupTransactSessionAbortLeavesNoTrace aborts the session's first transaction: its
// output is in the log (read_uncommitted) but never read_committed, and the group's offsets do
// not move. The session then copies everything in committed transactions, and read_committed
// still sees each record once.
func TestFranzGoGroupTransactSessionAbortLeavesNoTrace(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const in, out, group, n = "ctp-abort-in", "ctp-abort-out", "ctp-abort", 100
	c := ctpCluster(ctx, t, in, out, n)
	s := ctpSession(t, c, group, in, out)

	var aborted []string
	for len(aborted) == 0 {
		vs, committed := copyOnce(ctx, t, s, kgo.TryAbort)
		if committed {
			t.Fatal("a transaction ended with TryAbort committed")
		}
		aborted = vs
	}
	checkAbortLeftNoTrace(ctx, t, c, group, in, out, aborted)

	checkCopiedOnce(ctx, t, c, group, in, out, copyAll(ctx, t, s, n, nil), n)
}

// checkAbortLeftNoTrace checks what an aborted copy of the input values aborted leaves: its
// output is read_uncommitted only, and group has no committed offset of in.
func checkAbortLeftNoTrace(ctx context.Context, t *testing.T, c *kafkatest.Cluster, group, in, out string, aborted []string) {
	t.Helper()
	if got := readAllOutput(ctx, t, c, out, 3, kgo.ReadCommitted()); len(got) != 0 {
		t.Fatalf("read_committed reads %d records of an aborted transaction: %v", len(got), got)
	}
	if got, want := readAllOutput(ctx, t, c, out, 3, kgo.ReadUncommitted()), transformed(aborted); !slices.Equal(got, want) {
		t.Fatalf("read_uncommitted output is not the aborted transaction's %d records: %s", len(want), diffSummary(got, want))
	}
	if commits := committedOffsets(ctx, t, c, group, in); len(commits) != 0 {
		t.Fatalf("the aborted transaction committed the group's offsets: %v", commits)
	}
}

// checkCopiedOnce checks the end of a copy of the n-record input after an aborted one: the
// copier copied every input value once, and checkOutputOnce.
func checkCopiedOnce(ctx context.Context, t *testing.T, c *kafkatest.Cluster, group, in, out string, copied []string, n int) {
	t.Helper()
	copied = slices.Sorted(slices.Values(copied))
	if want := values("in", n); !slices.Equal(copied, want) {
		t.Fatalf("the copier copied %s", diffSummary(copied, want))
	}
	checkOutputOnce(ctx, t, c, group, in, out, n)
}

// checkOutputOnce checks the end of a copy of the n-record input: read_committed output is the
// input transformed, each record once, and group's committed offsets are the input's end.
func checkOutputOnce(ctx context.Context, t *testing.T, c *kafkatest.Cluster, group, in, out string, n int) {
	t.Helper()
	if got, want := readAllOutput(ctx, t, c, out, 3, kgo.ReadCommitted()), transformed(values("in", n)); !slices.Equal(got, want) {
		t.Fatalf("read_committed output is not the input transformed once: %s", diffSummary(got, want))
	}
	checkCommittedAtEnd(ctx, t, c, group, in)
}

// checkCommittedAtEnd checks that group's committed offsets of in are in's end offsets.
func checkCommittedAtEnd(ctx context.Context, t *testing.T, c *kafkatest.Cluster, group, in string) {
	t.Helper()
	ends, commits := endOffsets(ctx, t, c, in), committedOffsets(ctx, t, c, group, in)
	if !maps.Equal(ends, commits) {
		t.Fatalf("group %s committed %v, want the input's end offsets %v", group, commits, ends)
	}
}

// diffSummary names what got lacks and what it has too many of, against want (both sorted).
func diffSummary(got, want []string) string {
	count := map[string]int{}
	for _, v := range want {
		count[v]++
	}
	for _, v := range got {
		count[v]--
	}
	var missing, extra []string
	for v, n := range count {
		for ; n > 0; n-- {
			missing = append(missing, v)
		}
		for ; n < 0; n++ {
			extra = append(extra, v)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	short := func(vs []string) string {
		if len(vs) > 8 {
			return strings.Join(vs[:8], ",") + fmt.Sprintf(",… (%d)", len(vs))
		}
		return strings.Join(vs, ",")
	}
	return fmt.Sprintf("got %d, want %d; missing [%s]; extra [%s]", len(got), len(want), short(missing), short(extra))
}

// TestSaramaCopiesWithOffsetsInTheTransaction copies a 60-record input with sarama's
// transactional producer, putting the consumed offsets in each transaction (AddMessageToTxn for
// one input partition, AddOffsetsToTxn for the other; TxnOffsetCommit v3 of a group without
// members). The first transaction is aborted: its output is never read_committed and the group
// keeps no offset; after the committed ones, read_committed output = input transformed once and
// the committed offsets are the input's end offsets.
func TestSaramaCopiesWithOffsetsInTheTransaction(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const in, out, group, n = "ctp-sarama-in", "ctp-sarama-out", "ctp-sarama", 60
	c := ctpCluster(ctx, t, in, out, n)

	prod := saramaTxnProducer(t, c, "ctp-sarama-copier")
	cons, err := sarama.NewConsumer(c.Bootstrap(), saramaConfig(sarama.V3_6_0_0))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	parts := make([]sarama.PartitionConsumer, 2)
	for p := range parts {
		if parts[p], err = cons.ConsumePartition(in, int32(p), sarama.OffsetOldest); err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		for _, pc := range parts {
			pc.Close()
		}
	}()

	// copyBatch copies the next k records of each input partition in one transaction.
	copyBatch := func(k int, commit bool) []string {
		if err := prod.BeginTxn(); err != nil {
			t.Fatal(err)
		}
		var copied []string
		for p, pc := range parts {
			var last *sarama.ConsumerMessage
			for range k {
				select {
				case m := <-pc.Messages():
					last = m
				case err := <-pc.Errors():
					t.Fatalf("consume %s-%d: %v", in, p, err)
				case <-ctx.Done():
					t.Fatalf("consume %s-%d: %v", in, p, ctx.Err())
				}
				copied = append(copied, string(last.Value))
				if _, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: out, Value: sarama.StringEncoder("out-" + string(last.Value))}); err != nil {
					t.Fatalf("send: %v", err)
				}
			}
			if p == 0 {
				err = prod.AddMessageToTxn(last, group, nil)
			} else {
				err = prod.AddOffsetsToTxn(map[string][]*sarama.PartitionOffsetMetadata{
					in: {{Partition: int32(p), Offset: last.Offset + 1}},
				}, group)
			}
			if err != nil {
				t.Fatalf("offsets of %s-%d in the transaction: %v", in, p, err)
			}
		}
		end := prod.CommitTxn
		if !commit {
			end = prod.AbortTxn
		}
		if err := end(); err != nil {
			t.Fatalf("end transaction (commit %v): %v", commit, err)
		}
		return copied
	}

	aborted := copyBatch(5, false)
	checkAbortLeftNoTrace(ctx, t, c, group, in, out, aborted)

	// After the abort the copier starts over from the group's committed offsets: there are
	// none, so from the start.
	for p, pc := range parts {
		pc.Close()
		if parts[p], err = cons.ConsumePartition(in, int32(p), sarama.OffsetOldest); err != nil {
			t.Fatal(err)
		}
	}
	var copied []string
	for range n / 2 / 10 {
		copied = append(copied, copyBatch(10, true)...)
	}
	checkCopiedOnce(ctx, t, c, group, in, out, copied, n)
}

// rawTxn drives transactional offset commits by hand: a franz-go transactional client for the
// records, raw AddOffsetsToTxn and TxnOffsetCommit for the offsets of group's topic-0.
type rawTxn struct {
	t            *testing.T
	cl           *kgo.Client
	id           string
	group, topic string
}

func newRawTxn(t *testing.T, c *kafkatest.Cluster, id, group, topic string) *rawTxn {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.TransactionalID(id), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &rawTxn{t: t, cl: cl, id: id, group: group, topic: topic}
}

// fetch returns the group's offset of topic-0 and its code, with or without RequireStable, as
// cl's broker answers (any client of the cluster will do).
func (r *rawTxn) fetch(ctx context.Context, cl *kgo.Client, stable bool) (int64, int16) {
	r.t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.RequireStable = stable
	g := kmsg.NewOffsetFetchRequestGroup()
	g.Group = r.group
	g.Topics = []kmsg.OffsetFetchRequestGroupTopic{{Topic: r.topic, Partitions: []int32{0}}}
	req.Groups = append(req.Groups, g)
	req.Group, req.Topics = r.group, []kmsg.OffsetFetchRequestTopic{{Topic: r.topic, Partitions: []int32{0}}}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		r.t.Fatal(err)
	}
	if len(resp.Groups) == 1 {
		if code := resp.Groups[0].ErrorCode; code != 0 {
			return -1, code
		}
		p := resp.Groups[0].Topics[0].Partitions[0]
		return p.Offset, p.ErrorCode
	}
	p := resp.Topics[0].Partitions[0]
	return p.Offset, p.ErrorCode
}

// settled waits until the transaction's marker reached the offsets partition (the client's
// EndTxn returns before the markers are written; a coordinator may be moving) and returns the
// stable offset.
func (r *rawTxn) settled(ctx context.Context, cl *kgo.Client) int64 {
	r.t.Helper()
	for {
		off, code := r.fetch(ctx, cl, true)
		switch code {
		case 0:
			return off
		case kerr.UnstableOffsetCommit.Code, kerr.NotCoordinator.Code, kerr.CoordinatorNotAvailable.Code, kerr.CoordinatorLoadInProgress.Code:
		default:
			r.t.Fatalf("OffsetFetch: %v", kerr.ErrorForCode(code))
		}
		select {
		case <-ctx.Done():
			r.t.Fatalf("the offsets stay unstable after the transaction ended (last: %v)", kerr.ErrorForCode(code))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// begin opens a transaction with one record and offset as the group's pending commit of
// topic-0 (plus a partition of a topic that does not exist, which must get
// UNKNOWN_TOPIC_OR_PARTITION), and checks that RequireStable answers UNSTABLE_OFFSET_COMMIT.
func (r *rawTxn) begin(ctx context.Context, offset int64) {
	t := r.t
	t.Helper()
	if err := r.cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := r.cl.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	pid, epoch, err := r.cl.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	add := kmsg.NewPtrAddOffsetsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = r.id, pid, epoch, r.group
	addResp, err := add.RequestWith(ctx, r.cl)
	if err != nil || addResp.ErrorCode != 0 {
		t.Fatalf("AddOffsetsToTxn: %v, %+v", err, addResp)
	}
	commit := kmsg.NewPtrTxnOffsetCommitRequest()
	commit.TransactionalID, commit.Group, commit.ProducerID, commit.ProducerEpoch = r.id, r.group, pid, epoch
	rt := kmsg.NewTxnOffsetCommitRequestTopic()
	rt.Topic = r.topic
	rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	rp.Offset = offset
	rt.Partitions = append(rt.Partitions, rp)
	gone := kmsg.NewTxnOffsetCommitRequestTopic()
	gone.Topic = "no-such-topic"
	gone.Partitions = append(gone.Partitions, rp)
	commit.Topics = append(commit.Topics, rt, gone)
	commitResp, err := commit.RequestWith(ctx, r.cl)
	if err != nil {
		t.Fatalf("TxnOffsetCommit: %v", err)
	}
	codes := map[string]int16{}
	for _, rt := range commitResp.Topics {
		for _, rp := range rt.Partitions {
			codes[rt.Topic] = rp.ErrorCode
		}
	}
	if want := map[string]int16{r.topic: 0, "no-such-topic": kerr.UnknownTopicOrPartition.Code}; !maps.Equal(codes, want) {
		t.Fatalf("TxnOffsetCommit codes %v, want %v", codes, want)
	}
	if off, code := r.fetch(ctx, r.cl, true); code != kerr.UnstableOffsetCommit.Code {
		t.Fatalf("OffsetFetch RequireStable in the open transaction: offset %d code %d, want UNSTABLE_OFFSET_COMMIT", off, code)
	}
}

// TestTxnOffsetCommitIsUnstableUntilItsMarkerThenCommittedOrDropped drives KIP-447 on the wire
// with raw AddOffsetsToTxn and TxnOffsetCommit requests in a franz-go transaction (3 brokers, so
// the offsets partition's marker may come from another broker by WriteTxnMarkers): while the
// transaction is open, OffsetFetch with RequireStable answers UNSTABLE_OFFSET_COMMIT and without
// it the old offset; after an abort the offset is unchanged, after a commit it is the new one. A
// partition of a topic that does not exist gets UNKNOWN_TOPIC_OR_PARTITION, as in Kafka.
func TestTxnOffsetCommitIsUnstableUntilItsMarkerThenCommittedOrDropped(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := kafkatest.NewCluster(t, kafkatest.Brokers(3))
	if err := c.CreateTopic(ctx, "ctp-raw", 1, 3, nil); err != nil {
		t.Fatal(err)
	}
	r := newRawTxn(t, c, "ctp-raw-copier", "ctp-raw", "ctp-raw")
	run := func(offset int64, end kgo.TransactionEndTry) {
		r.begin(ctx, offset)
		if err := r.cl.EndTransaction(ctx, end); err != nil {
			t.Fatal(err)
		}
	}

	run(1, kgo.TryCommit)
	if off := r.settled(ctx, r.cl); off != 1 {
		t.Fatalf("after the commit the group's offset is %d, want 1", off)
	}
	run(2, kgo.TryAbort)
	if off := r.settled(ctx, r.cl); off != 1 {
		t.Fatalf("after the abort the group's offset is %d, want still 1", off)
	}
	run(3, kgo.TryCommit)
	if off, code := r.fetch(ctx, r.cl, false); code != 0 || (off != 1 && off != 3) {
		t.Fatalf("OffsetFetch without RequireStable: offset %d code %d, want 1 or 3", off, code)
	}
	if off := r.settled(ctx, r.cl); off != 3 {
		t.Fatalf("after the second commit the group's offset is %d, want 3", off)
	}
}

// TestTxnOffsetCommitPendingSurvivesLossOfTheGroupCoordinator kills the group's coordinator
// while a transactional offset commit is pending: the broker that takes over its offsets
// partition rebuilds the pending commit from the log (UNSTABLE_OFFSET_COMMIT, offset not yet
// visible), and the transaction's COMMIT marker then makes it the group's offset there.
func TestTxnOffsetCommitPendingSurvivesLossOfTheGroupCoordinator(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := kafkatest.NewCluster(t, kafkatest.Brokers(3))
	if err := c.CreateTopic(ctx, "ctp-failover", 1, 3, nil); err != nil {
		t.Fatal(err)
	}
	r := newRawTxn(t, c, "ctp-failover-copier", "ctp-failover", "ctp-failover")
	r.begin(ctx, 5)

	coord := coordinatorOf(t, ctx, r.cl, r.group)
	if err := c.Kill(coord); err != nil {
		t.Fatal(err)
	}
	fresh, err := kgo.NewClient(kgo.SeedBrokers(live(c)...))
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	for coordinatorOf(t, ctx, fresh, r.group) == coord {
		time.Sleep(50 * time.Millisecond) // the controller notices after the session timeout
	}
	for {
		off, code := r.fetch(ctx, fresh, true)
		if code == kerr.UnstableOffsetCommit.Code {
			break
		}
		if code != kerr.NotCoordinator.Code && code != kerr.CoordinatorNotAvailable.Code && code != kerr.CoordinatorLoadInProgress.Code {
			t.Fatalf("the new coordinator answers RequireStable with offset %d code %d, want UNSTABLE_OFFSET_COMMIT (the pending commit replayed)", off, code)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if off, code := r.fetch(ctx, fresh, false); off != -1 || code != 0 {
		t.Fatalf("the new coordinator answers offset %d code %d, want -1: the commit is pending", off, code)
	}
	if err := r.cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	if off := r.settled(ctx, fresh); off != 5 {
		t.Fatalf("after the commit the new coordinator answers offset %d, want 5", off)
	}
}

// TestJavaKafkaTransactionsDescribesAnOpenTransaction runs Kafka's kafka-transactions.sh
// (TransactionsCommand) against the bundled cluster while a franz-go transaction is open:
// describe shows the transactional id, its producer id, Ongoing, and its partitions, the offsets
// partition included once AddOffsetsToTxn added it.
func TestJavaKafkaTransactionsDescribesAnOpenTransaction(t *testing.T) {
	t.Parallel()
	tool := javaTools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const topic, id = "java-txns", "java-txns-copier"
	c := kafkatest.NewCluster(t)
	if err := c.CreateTopic(ctx, topic, 1, 1, nil); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.TransactionalID(id), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	pid, epoch, err := cl.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	add := kmsg.NewPtrAddOffsetsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = id, pid, epoch, "java-txns"
	if resp, err := add.RequestWith(ctx, cl); err != nil || resp.ErrorCode != 0 {
		t.Fatalf("AddOffsetsToTxn: %v %+v", err, resp)
	}

	run := func(args ...string) string {
		t.Helper()
		cmd := tool(ctx, "org.apache.kafka.tools.TransactionsCommand", append([]string{"--bootstrap-server", strings.Join(c.Bootstrap(), ",")}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kafka-transactions.sh %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	// One JVM, to keep the test short: list reads what describe does (ListTransactions,
	// DescribeTransactions), and franz-go's kadm checks list (TestKadmDescribesAndListsTransactions).
	describe := run("describe", "--transactional-id", id)
	row := `(?m)^\d+\s+` + id + `\s+` + fmt.Sprint(pid) + `\s+\d+\s+Ongoing\s+.*\s(__consumer_offsets-\d+,` + topic + `-0|` + topic + `-0,__consumer_offsets-\d+)\s*$`
	if !regexp.MustCompile(row).MatchString(describe) {
		t.Fatalf("kafka-transactions.sh describe does not show %s (producer %d) Ongoing on %s-0 and an offsets partition:\n%s", id, pid, topic, describe)
	}
	if err := cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
}
