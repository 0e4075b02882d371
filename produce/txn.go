package produce

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
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
func (p *Producer) Transact(ctx context.Context, fn func(ctx context.Context) error) (err error) {
	if p.txnID == "" {
		return errNotTransactional(p.preset)
	}
	if p.closed.Load() {
		return p.txnError(ErrClosed, false)
	}
	p.txnMu.Lock()
	defer p.txnMu.Unlock()
	if err := p.cl.BeginTransaction(); err != nil {
		return p.txnError(fmt.Errorf("begin: %w", err), false)
	}
	p.txnFailed.Store(0)
	finished := false
	defer func() {
		if !finished { // fn panicked
			_ = p.kgoAbort(ctx, errors.New("fn panicked"))
		}
	}()
	ferr := fn(ctx)
	finished = true
	if ferr == nil {
		if e := p.cl.Flush(ctx); e != nil {
			ferr = fmt.Errorf("flush: %w", e)
		} else if p.txnFailed.Load() > 0 {
			ferr = errTxnRecordFailed
		}
	}
	if ferr != nil {
		return p.kgoAbort(ctx, ferr)
	}
	cerr := p.cl.EndTransaction(ctx, kgo.TryCommit)
	if cerr == nil {
		return nil
	}
	if kgoDefinite(cerr) {
		return p.kgoAbort(ctx, fmt.Errorf("commit: %w", cerr))
	}
	// kgo's documented answer to a commit with no definite answer: retry
	// with TryAbort, which reloads the producer id and so aborts whatever
	// is still open, but cannot undo a commit that went through.
	if aerr := p.cl.EndTransaction(ctx, kgo.TryAbort); aerr != nil {
		cerr = errors.Join(cerr, fmt.Errorf("abort after the unanswered commit: %w", aerr))
	}
	return p.txnError(fmt.Errorf("commit: %w", cerr), true)
}

// kgoAbort fails the records still buffered, ends the transaction with an
// abort and returns the TxnError for cause.
func (p *Producer) kgoAbort(ctx context.Context, cause error) error {
	aerr := p.cl.AbortBufferedRecords(ctx)
	if aerr == nil {
		aerr = p.cl.EndTransaction(ctx, kgo.TryAbort)
	}
	if aerr != nil {
		cause = errors.Join(cause, fmt.Errorf("abort: %w", aerr))
	}
	return p.txnError(cause, false)
}

func (p *Producer) txnError(err error, maybeCommitted bool) error {
	return &TxnError{TransactionalID: p.txnID, MaybeCommitted: maybeCommitted, Fenced: kgoFenced(err), Err: err}
}

// kgoDefinite reports whether EndTransaction's error is the broker's (or
// kgo's) definite refusal to commit, as opposed to a lost answer.
func kgoDefinite(err error) bool {
	if errors.Is(err, kerr.OperationNotAttempted) || errors.Is(err, kerr.TransactionAbortable) {
		return true
	}
	var ke *kerr.Error
	return errors.As(err, &ke) && !ke.Retriable && ke.Code != kerr.UnknownServerError.Code
}

func kgoFenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch)
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
		return s.txnError(ErrClosed, false)
	}
	s.txnMu.Lock()
	defer s.txnMu.Unlock()
	if err := s.sp.BeginTxn(); err != nil {
		return s.txnError(fmt.Errorf("begin: %w", err), false)
	}
	s.txnFailed.Store(0)
	finished := false
	defer func() {
		if !finished { // fn panicked
			_ = s.saramaAbort(errors.New("fn panicked"))
		}
	}()
	ferr := fn(ctx)
	finished = true
	if ferr == nil && (s.txnFailed.Load() > 0 || s.sp.TxnStatus()&sarama.ProducerTxnFlagInError != 0) {
		ferr = errTxnRecordFailed
	}
	if ferr != nil {
		return s.saramaAbort(ferr)
	}
	cerr := s.sp.CommitTxn()
	if cerr == nil {
		return nil
	}
	var ke sarama.KError
	if errors.As(cerr, &ke) || s.sp.TxnStatus()&sarama.ProducerTxnFlagInError != 0 {
		return s.saramaAbort(fmt.Errorf("commit: %w", cerr))
	}
	if aerr := s.sp.AbortTxn(); aerr != nil {
		cerr = errors.Join(cerr, fmt.Errorf("abort after the unanswered commit: %w", aerr))
	}
	return s.txnError(fmt.Errorf("commit: %w", cerr), true)
}

func (s *SaramaSyncProducer) saramaAbort(cause error) error {
	if aerr := s.sp.AbortTxn(); aerr != nil {
		cause = errors.Join(cause, fmt.Errorf("abort: %w", aerr))
	}
	return s.txnError(cause, false)
}

func (s *SaramaSyncProducer) txnError(err error, maybeCommitted bool) error {
	fenced := errors.Is(err, sarama.ErrProducerFenced) || errors.Is(err, sarama.ErrInvalidProducerEpoch)
	return &TxnError{TransactionalID: s.txnID, MaybeCommitted: maybeCommitted, Fenced: fenced, Err: err}
}
