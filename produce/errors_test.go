package produce

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestDeliveryErrorMatchesExactlyOneOutcome(t *testing.T) {
	cause := errors.New("broker gone")
	for _, tc := range []struct {
		maybe     bool
		want      error
		notWant   error
		inMessage string
	}{
		{true, ErrOutcomeUnknown, ErrNotWritten, "outcome unknown, it may have been written"},
		{false, ErrNotWritten, ErrOutcomeUnknown, "not written"},
	} {
		err := fmt.Errorf("send: %w", &DeliveryError{Topic: "orders", Partition: 2, MaybeWritten: tc.maybe, Err: cause})
		if !errors.Is(err, tc.want) || errors.Is(err, tc.notWant) {
			t.Errorf("MaybeWritten=%v: Is(%v)=%v Is(%v)=%v", tc.maybe, tc.want, errors.Is(err, tc.want), tc.notWant, errors.Is(err, tc.notWant))
		}
		if !errors.Is(err, cause) {
			t.Errorf("MaybeWritten=%v: the cause is not matched", tc.maybe)
		}
		var de *DeliveryError
		if !errors.As(err, &de) || de.Topic != "orders" || de.Partition != 2 {
			t.Errorf("errors.As = %+v", de)
		}
		msg := err.Error()
		if !strings.Contains(msg, tc.inMessage) || !strings.Contains(msg, `"orders" partition 2`) || !strings.Contains(msg, "broker gone") {
			t.Errorf("message %q", msg)
		}
	}
}

func TestDeliveryErrorWithoutPartitionOrCause(t *testing.T) {
	err := &DeliveryError{Topic: "t", Partition: -1, MaybeWritten: true}
	if strings.Contains(err.Error(), "partition") {
		t.Errorf("message names a partition: %q", err)
	}
	if !errors.Is(err, ErrOutcomeUnknown) {
		t.Error("does not match ErrOutcomeUnknown")
	}
}

func TestKgoFailuresSayWhetherTheRecordMayHaveBeenWritten(t *testing.T) {
	for _, tc := range []struct {
		name     string
		err      error
		idemSafe bool
		want     bool
	}{
		{"appended but not replicated", kerr.NotEnoughReplicasAfterAppend, true, true},
		{"broker timed out waiting for replicas", kerr.RequestTimedOut, true, true},
		{"timeout whose last attempt was appended", fmt.Errorf("%w, last err: %w", kgo.ErrRecordTimeout, kerr.NotEnoughReplicasAfterAppend), true, true},
		{"client closed under a request", kgo.ErrClientClosed, true, true},
		{"idempotent record timed out", kgo.ErrRecordTimeout, true, false},
		{"idempotent record cancelled", context.DeadlineExceeded, true, false},
		{"idempotent record out of retries", kgo.ErrRecordRetries, true, false},
		{"non-idempotent record timed out", kgo.ErrRecordTimeout, false, true},
		{"non-idempotent record cancelled", context.Canceled, false, true},
		{"non-idempotent network error", io.ErrUnexpectedEOF, false, true},
		{"broker rejected too large a record", kerr.MessageTooLarge, false, false},
		{"broker denied the topic", kerr.TopicAuthorizationFailed, false, false},
		{"buffer full with manual flushing", kgo.ErrMaxBuffered, false, false},
		{"producer closed before sending", ErrClosed, false, false},
		{"retriable broker error without idempotence", kerr.NotLeaderForPartition, false, true},
	} {
		if got := kgoMaybeWritten(tc.err, tc.idemSafe); got != tc.want {
			t.Errorf("%s: kgoMaybeWritten = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestSaramaFailuresSayWhetherTheMessageMayHaveBeenWritten(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"appended but not replicated", sarama.ErrNotEnoughReplicasAfterAppend, true},
		{"retries exhausted on a leader change", sarama.ErrNotLeaderForPartition, true},
		{"broker timed out", sarama.ErrRequestTimedOut, true},
		{"connection lost", io.EOF, true},
		{"out of brokers", sarama.ErrOutOfBrokers, true},
		{"message too large", sarama.ErrMessageSizeTooLarge, false},
		{"topic denied", sarama.ErrTopicAuthorizationFailed, false},
		{"sent during shutdown", sarama.ErrShuttingDown, false},
		{"refused by the client's checks", sarama.ConfigurationError("message too big"), false},
	} {
		if got := saramaMaybeWritten(tc.err); got != tc.want {
			t.Errorf("%s: saramaMaybeWritten = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestConfigErrorNamesPresetSettingValueAndFix(t *testing.T) {
	ce := &ConfigError{Preset: StrictOrder, Setting: "Net.MaxOpenRequests", Value: "5", Problem: "reorders", Fix: "set 1", Err: ErrUnsafeConfig}
	want := "produce: StrictOrder: Net.MaxOpenRequests = 5: reorders (fix: set 1)"
	if ce.Error() != want {
		t.Errorf("Error() = %q, want %q", ce.Error(), want)
	}
	joined := joinConfigErrors([]*ConfigError{ce, {Preset: StrictOrder, Setting: "B", Err: ErrInvalidConfig}})
	if got := ConfigErrors(joined); len(got) != 2 || got[0] != ce {
		t.Fatalf("ConfigErrors = %v", got)
	}
	if !errors.Is(joined, ErrUnsafeConfig) || !errors.Is(joined, ErrInvalidConfig) {
		t.Error("joined error does not match both causes")
	}
	if joinConfigErrors(nil) != nil || ConfigErrors(nil) != nil {
		t.Error("no errors should give nil")
	}
	if got := ConfigErrors(fmt.Errorf("wrapped: %w", joined)); len(got) != 2 {
		t.Errorf("ConfigErrors through a wrapper found %d", len(got))
	}
}
