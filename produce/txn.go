package produce

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/internal/kgotxn"
)

// Errors of a transaction: a failed [Producer.Transact] or
// [SaramaSyncProducer.Transact] returns a [*TxnError], which matches
// exactly one of ErrTxnAborted and [ErrOutcomeUnknown], and also ErrFenced
// when a newer producer took over the transactional id.
var (
	// ErrTxnAborted means the transaction was not committed and never will
	// be: a read_committed consumer reads none of its records. Running the
	// same work again in a new transaction duplicates nothing.
	ErrTxnAborted = errors.New("produce: transaction aborted, none of its records will be read committed")

	// ErrFenced means a newer producer with the same transactional id
	// started (InitProducerID bumped the epoch): the broker aborted this
	// producer's open transaction and refuses its every further request.
	// Close the producer; the newer one carries on.
	ErrFenced = errors.New("produce: fenced by a newer producer with the same transactional id")
)

// errTxnRecordFailed is the cause of an aborted transaction in which a
// record sent through the producer failed while fn returned nil.
var errTxnRecordFailed = errors.New("produce: a record sent in the transaction failed")

// TxnError is a transaction that did not commit, or whose commit was sent
// but not answered. It matches ErrTxnAborted, or ErrOutcomeUnknown if
// MaybeCommitted is true; ErrFenced if Fenced is true; and Err.
type TxnError struct {
	TransactionalID string // TransactionalID is the producer's transactional id.

	// MaybeCommitted is true if the commit request was sent and no
	// definite answer came back: a read_committed consumer may or may not
	// read the transaction's records.
	MaybeCommitted bool

	// Fenced is true if a newer producer with the same transactional id
	// fenced this one; the producer cannot run transactions any more.
	Fenced bool

	// Err is the cause: fn's error, a record's [*DeliveryError], or the
	// client's or broker's error, joined with the abort's error if the
	// abort failed too.
	Err error
}

// Error describes the transaction's outcome and its cause.
func (e *TxnError) Error() string {
	s := "produce: transaction of " + strconv.Quote(e.TransactionalID)
	switch {
	case e.MaybeCommitted:
		s += ": outcome unknown, it may have committed"
	default:
		s += " aborted"
	}
	if e.Fenced {
		s += " (fenced by a newer producer with the same transactional id)"
	}
	return s + ": " + fmt.Sprint(e.Err)
}

// Unwrap returns the matching sentinels (ErrTxnAborted or
// ErrOutcomeUnknown, and ErrFenced if Fenced) and Err.
func (e *TxnError) Unwrap() []error {
	out := []error{ErrTxnAborted}
	if e.MaybeCommitted {
		out[0] = ErrOutcomeUnknown
	}
	if e.Fenced {
		out = append(out, ErrFenced)
	}
	if e.Err != nil {
		out = append(out, e.Err)
	}
	return out
}

// errNotTransactional is returned by Transact on a producer without a
// transactional id.
func errNotTransactional(p Preset) error {
	return fmt.Errorf("produce: Transact needs the ExactlyOnce preset and a transactional id (the producer has preset %v and none): %w", p, ErrInvalidConfig)
}

// Transact runs fn inside a transaction: it begins one, calls fn (which
// sends records with Send or SendAsync), waits for every buffered record,
// and commits if fn returned nil and every record sent through the
// Producer since the transaction began was acknowledged. Otherwise it
// aborts, and a read_committed consumer reads none of the transaction's
// records. Transact returns nil once the commit is acknowledged, else a
// [*TxnError] matching [ErrTxnAborted] or, if the commit was sent without
// a definite answer, [ErrOutcomeUnknown]; it also matches [ErrFenced] if a
// newer producer with the same transactional id took over, and fn's error.
//
// Transactions run one at a time: a second Transact waits for the first.
// Records sent from other goroutines while fn runs belong to the
// transaction; records produced through [Producer.Client] directly do not
// count as its failures. A panic in fn aborts the transaction and goes on
// panicking. The Producer must have the ExactlyOnce preset; records sent
// outside Transact fail with [ErrNotWritten].
//
// If ctx ends during the commit, the outcome is unknown; kgo recommends
// not ending it then.
func (p *Producer) Transact(ctx context.Context, fn func(ctx context.Context) error) error {
	if p.txnID == "" {
		return errNotTransactional(p.preset)
	}
	if p.closed.Load() {
		return newTxnError(p.txnID, ErrClosed, false)
	}
	p.txnMu.Lock()
	defer p.txnMu.Unlock()
	return runTxn(ctx, kgoTxn{p.cl}, p.txnID, &p.txnFailed, fn)
}

// Transact runs fn inside a transaction, as [Producer.Transact] does for
// kgo: BeginTxn, fn (which sends with Send), then CommitTxn if fn returned
// nil and every message sent since BeginTxn was acknowledged, else
// AbortTxn. It returns nil once the commit is acknowledged, else a
// [*TxnError] matching [ErrTxnAborted] or [ErrOutcomeUnknown], [ErrFenced]
// if a newer producer with the same transactional id took over, and fn's
// error.
//
// Transactions run one at a time. sarama's CommitTxn and AbortTxn cannot
// be cancelled, so ctx is only handed to fn. The producer must have the
// ExactlyOnce preset; messages sent outside Transact fail.
func (s *SaramaSyncProducer) Transact(ctx context.Context, fn func(ctx context.Context) error) error {
	if !s.sp.IsTransactional() {
		return errNotTransactional(s.preset)
	}
	if s.closed.Load() {
		return newTxnError(s.txnID, ErrClosed, false)
	}
	s.txnMu.Lock()
	defer s.txnMu.Unlock()
	return runTxn(ctx, saramaTxn{s.sp}, s.txnID, &s.txnFailed, fn)
}

// txnClient is a client library's transactional producer, as runTxn
// drives it.
type txnClient interface {
	begin() error
	// settle waits for the records sent in the transaction and returns
	// an error if the client knows one of them failed.
	settle(ctx context.Context) error
	commit(ctx context.Context) error
	// refused reports whether commit's error is a definite refusal, as
	// opposed to a lost answer.
	refused(err error) bool
	abort(ctx context.Context) error
}

// runTxn runs fn inside a transaction of tc: begin, fn, settle, then
// commit if fn returned nil and failed (the sends that failed since
// begin) stayed 0, else abort. A commit without a definite answer is
// followed by an abort too, which both libraries document as the way to
// reset the producer; it cannot undo a commit that went through.
func runTxn(ctx context.Context, tc txnClient, id string, failed *atomic.Int64, fn func(context.Context) error) error {
	if err := tc.begin(); err != nil {
		return newTxnError(id, fmt.Errorf("begin: %w", err), false)
	}
	failed.Store(0)
	finished := false
	defer func() {
		if !finished { // fn panicked
			_ = tc.abort(ctx)
		}
	}()
	err := fn(ctx)
	finished = true
	if err == nil {
		err = tc.settle(ctx)
	}
	if err == nil && failed.Load() > 0 {
		err = errTxnRecordFailed
	}
	maybeCommitted := false
	if err == nil {
		cerr := tc.commit(ctx)
		if cerr == nil {
			return nil
		}
		err, maybeCommitted = fmt.Errorf("commit: %w", cerr), !tc.refused(cerr)
	}
	if aerr := tc.abort(ctx); aerr != nil {
		err = errors.Join(err, fmt.Errorf("abort: %w", aerr))
	}
	return newTxnError(id, err, maybeCommitted)
}

func newTxnError(id string, err error, maybeCommitted bool) *TxnError {
	fenced := errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) ||
		errors.Is(err, sarama.ErrProducerFenced) || errors.Is(err, sarama.ErrInvalidProducerEpoch)
	return &TxnError{TransactionalID: id, MaybeCommitted: maybeCommitted, Fenced: fenced, Err: err}
}

// kgoTxn is a transactional kgo client.
type kgoTxn struct{ cl *kgo.Client }

func (k kgoTxn) begin() error { return k.cl.BeginTransaction() }

func (k kgoTxn) settle(ctx context.Context) error {
	if err := k.cl.Flush(ctx); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	return nil
}

func (k kgoTxn) commit(ctx context.Context) error { return k.cl.EndTransaction(ctx, kgo.TryCommit) }

// refused: see kgotxn.Refused.
func (k kgoTxn) refused(err error) bool { return kgotxn.Refused(err) }

// abort fails the records still buffered and ends the transaction with an
// abort (after an unanswered commit, kgo's documented retry).
func (k kgoTxn) abort(ctx context.Context) error {
	if err := k.cl.AbortBufferedRecords(ctx); err != nil {
		return err
	}
	return k.cl.EndTransaction(ctx, kgo.TryAbort)
}

// saramaTxn is a transactional sarama producer.
type saramaTxn struct{ sp sarama.SyncProducer }

func (s saramaTxn) begin() error { return s.sp.BeginTxn() }

// settle: SendMessage has already waited; a failed message puts sarama's
// transaction manager in error.
func (s saramaTxn) settle(context.Context) error {
	if s.sp.TxnStatus()&sarama.ProducerTxnFlagInError != 0 {
		return errTxnRecordFailed
	}
	return nil
}

func (s saramaTxn) commit(context.Context) error { return s.sp.CommitTxn() }

// refused: a broker error code, or sarama's transaction manager in error
// (it then refuses to commit without sending EndTxn).
func (s saramaTxn) refused(err error) bool {
	var ke sarama.KError
	return errors.As(err, &ke) || s.sp.TxnStatus()&sarama.ProducerTxnFlagInError != 0
}

func (s saramaTxn) abort(context.Context) error { return s.sp.AbortTxn() }
