package kgotxn

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

func TestRefusedTellsARefusalFromALostAnswer(t *testing.T) {
	for _, tc := range []struct {
		err     error
		refused bool
	}{
		{kerr.OperationNotAttempted, true},
		{fmt.Errorf("commit: %w", kerr.TransactionAbortable), true},
		{kerr.ProducerFenced, true},
		{kerr.InvalidTxnState, true},
		{kerr.UnknownServerError, false},
		{kerr.CoordinatorNotAvailable, false}, // retriable: retries ran out
		{kerr.ConcurrentTransactions, true},   // the coordinator was busy: this EndTxn did nothing
		{errors.New("unable to dial: connection refused"), false},
		{context.DeadlineExceeded, false},
	} {
		if got := Refused(tc.err); got != tc.refused {
			t.Errorf("Refused(%v) = %v, want %v", tc.err, got, tc.refused)
		}
	}
}
