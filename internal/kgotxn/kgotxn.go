// Package kgotxn reads the errors franz-go returns when it ends a transaction: whether a commit
// that failed was refused (nothing of the transaction will be read committed) or went without a
// definite answer (it may have committed all the same). produce's Transact, consume's
// exactly-once mode and retry's exactly-once Job report the second as an unknown outcome.
package kgotxn

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Refused reports whether err, returned by kgo's Client.EndTransaction or
// GroupTransactSession.End asked to commit, is a definite refusal: OPERATION_NOT_ATTEMPTED (the
// producer id had failed, so no EndTxn was sent), TRANSACTION_ABORTABLE, or another
// non-retriable broker error except UNKNOWN_SERVER_ERROR, which kgo itself treats as
// unconfirmed. Anything else (a connection lost after EndTxn was sent, retries exhausted, a
// context ended mid-request) leaves the commit's outcome unknown.
func Refused(err error) bool {
	if errors.Is(err, kerr.OperationNotAttempted) || errors.Is(err, kerr.TransactionAbortable) {
		return true
	}
	var ke *kerr.Error
	return errors.As(err, &ke) && !ke.Retriable && ke.Code != kerr.UnknownServerError.Code
}
