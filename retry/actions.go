package retry

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/internal/tracekit"
)

// maxOutput bounds the response body or stderr text kept in an error.
const maxOutput = 512

// Republish returns a Handler that writes the due record back to its
// original topic, for consumers that are not written in Go: they read it
// again like any record. The record keeps its key, value and headers and
// carries the kafkaguard headers of kind KindRepublished, so that a Parker
// that parks it again continues its origin and attempt count, and MaxAttempts
// still ends in the dead-letter topic. The partition is the client's
// partitioner's choice (for a keyed record under the default partitioner, the
// original one). The write is acknowledged by every in-sync replica before
// the handler returns; client must produce with acks=all, or Republish
// returns an error wrapping ErrUnsafeClient.
//
// In an ExactlyOnce Job the record is not written by client: the Job
// writes it in the transaction that commits the marker, so that it is
// republished exactly once as read_committed consumers see it.
//
// Republish cannot keep key order (the record goes to the back of its
// topic), so it must not be combined with KeyOrder.
func Republish(client *kgo.Client) (Handler, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: nil client", ErrInvalidOption)
	}
	if err := checkAcks(client); err != nil {
		return nil, err
	}
	return func(ctx context.Context, m *Marker) error {
		rec := m.encode(m.Topic, KindRepublished)
		if outs, ok := txnOutputs(ctx); ok {
			// An ExactlyOnce Job writes it in its transaction.
			outs.add(rec)
			return nil
		}
		if err := client.ProduceSync(ctx, rec).FirstErr(); err != nil {
			return fmt.Errorf("retry: republishing %s: %w", m.Origin, err)
		}
		return nil
	}, nil
}

// HTTP header names the HTTPPost handler sets.
const (
	HTTPHeaderTopic     = "Kafkaguard-Topic"
	HTTPHeaderPartition = "Kafkaguard-Partition"
	HTTPHeaderOffset    = "Kafkaguard-Offset"
	HTTPHeaderKey       = "Kafkaguard-Key" // base64 (standard encoding); absent for a nil key
	HTTPHeaderAttempt   = "Kafkaguard-Attempt"
)

// HTTPPost returns a Handler that POSTs the record's value to url with
// Content-Type application/octet-stream and the record's place, key and
// attempt number (1 for the consumer's run, so 2 for the first retry) in the
// Kafkaguard-* headers. A 2xx response is success; anything else, or no
// response, is a failed attempt. client nil means http.DefaultClient. In a
// Job with Tracing the request carries the retry span's W3C trace context
// (traceparent and tracestate headers), so the service's spans join the
// record's trace.
func HTTPPost(url string, client *http.Client) Handler {
	if client == nil {
		client = http.DefaultClient
	}
	return func(ctx context.Context, m *Marker) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(m.Value))
		if err != nil {
			return Permanent(fmt.Errorf("retry: http action: %w", err))
		}
		req.Header.Set("Content-Type", "application/octet-stream")
		for k, v := range actionInfo(m) {
			req.Header.Set(k, v)
		}
		tracekit.InjectHTTP(ctx, req.Header)
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("retry: http action: %w", err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxOutput))
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("retry: http action: %s: %s", resp.Status, bytes.TrimSpace(body))
		}
		return nil
	}
}

// Environment variables the Exec handler sets for the command.
const (
	EnvTopic     = "KAFKAGUARD_TOPIC"
	EnvPartition = "KAFKAGUARD_PARTITION"
	EnvOffset    = "KAFKAGUARD_OFFSET"
	EnvKey       = "KAFKAGUARD_KEY" // base64 (standard encoding); unset for a nil key
	EnvAttempt   = "KAFKAGUARD_ATTEMPT"
)

// Exec returns a Handler that runs the command name with args, the record's
// value on its standard input and its place, key and attempt number in the
// KAFKAGUARD_* environment variables (added to the Job's environment). Exit
// status 0 is success; anything else is a failed attempt whose error carries
// the end of the command's standard error. The command is killed when the
// handler's context ends. In a Job with Tracing the command also gets the
// retry span's W3C trace context in TRACEPARENT and TRACESTATE.
func Exec(name string, args ...string) Handler {
	return func(ctx context.Context, m *Marker) error {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Stdin = bytes.NewReader(m.Value)
		var stderr tailBuffer
		cmd.Stderr = &stderr
		cmd.Env = cmd.Environ()
		for k, v := range envInfo(m) {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		cmd.Env = append(cmd.Env, tracekit.Env(ctx)...)
		if err := cmd.Run(); err != nil {
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				return fmt.Errorf("retry: exec action %s: %w: %s", name, err, bytes.TrimSpace(stderr.Bytes()))
			}
			return fmt.Errorf("retry: exec action %s: %w", name, err)
		}
		return nil
	}
}

func actionInfo(m *Marker) map[string]string {
	info := map[string]string{
		HTTPHeaderTopic:     m.Topic,
		HTTPHeaderPartition: strconv.Itoa(int(m.Partition)),
		HTTPHeaderOffset:    strconv.FormatInt(m.Offset, 10),
		HTTPHeaderAttempt:   strconv.Itoa(m.Attempts + 1),
	}
	if m.Key != nil {
		info[HTTPHeaderKey] = base64.StdEncoding.EncodeToString(m.Key)
	}
	return info
}

func envInfo(m *Marker) map[string]string {
	info := map[string]string{
		EnvTopic:     m.Topic,
		EnvPartition: strconv.Itoa(int(m.Partition)),
		EnvOffset:    strconv.FormatInt(m.Offset, 10),
		EnvAttempt:   strconv.Itoa(m.Attempts + 1),
	}
	if m.Key != nil {
		info[EnvKey] = base64.StdEncoding.EncodeToString(m.Key)
	}
	return info
}

// tailBuffer keeps the last maxOutput bytes written to it.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > maxOutput {
		t.b = append(t.b[:0], t.b[len(t.b)-maxOutput:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) Bytes() []byte { return t.b }
