package main

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/kafkaguard/kafkaguard/partitioner"
)

func TestPartitionPrintsEveryFamilysChoicePerKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{
			// Values published by sarama (foo: murmur2 16 of 100, SheetJS: crc32 26 of 100)
			// and kafka-python (empty key: murmur2 681 of 1000).
			name: "all families",
			args: []string{"--partitions", "100", "foo", "SheetJS", ""},
			want: "foo\t16\t73\t69\nSheetJS\t27\t23\t26\n\t81\t35\t0\n",
		},
		{
			name: "one partition",
			args: []string{"--partitions=1", "a", "b"},
			want: "a\t0\t0\t0\nb\t0\t0\t0\n",
		},
		{
			name: "only murmur2",
			args: []string{"--partitions", "1000", "--partitioner", "murmur2", "", "a", "abc"},
			want: "\t681\na\t524\nabc\t107\n",
		},
		{
			name: "only fnv1a",
			args: []string{"--partitioner=fnv1a", "--partitions=3", "123"},
			want: "123\t2\n",
		},
		{
			name: "only crc32",
			args: []string{"-partitions", "100", "-partitioner", "crc32", "abc123def456", "SheetJS"},
			want: "abc123def456\t57\nSheetJS\t26\n",
		},
		{
			name: "key that looks like a flag after --",
			args: []string{"--partitions", "100", "--partitioner", "crc32", "--", "--partitions"},
			want: "--partitions\t" + crc32Of100(t, "--partitions") + "\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runPartition(context.Background(), tt.args, &stdout, &stderr)
			if code != 0 {
				t.Fatalf("exit code %d, stderr %q", code, stderr.String())
			}
			if stdout.String() != tt.want {
				t.Errorf("stdout = %q, want %q", stdout.String(), tt.want)
			}
			if stderr.Len() != 0 {
				t.Errorf("stderr = %q, want nothing", stderr.String())
			}
		})
	}
}

// crc32Of100 is the crc32 partition of key among 100 partitions.
func crc32Of100(t *testing.T, key string) string {
	t.Helper()
	p, err := partitioner.ForKey(partitioner.HashCRC32, []byte(key), 100)
	if err != nil {
		t.Fatal(err)
	}
	return strconv.Itoa(p)
}

func TestPartitionRejectsBadUsageWithExitCode2(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"missing --partitions", []string{"k"}, "--partitions is required"},
		{"non-numeric --partitions", []string{"--partitions", "many", "k"}, `invalid value "many"`},
		{"zero partitions", []string{"--partitions", "0", "k"}, "--partitions must be 1 to 2147483647, not 0"},
		{"negative partitions", []string{"--partitions=-4", "k"}, "--partitions must be 1 to 2147483647, not -4"},
		{"too many partitions", []string{"--partitions", "2147483648", "k"}, "not 2147483648"},
		{"unknown partitioner", []string{"--partitions", "3", "--partitioner", "md5", "k"}, `--partitioner must be murmur2, fnv1a or crc32, not "md5"`},
		{"empty partitioner", []string{"--partitions", "3", "--partitioner=", "k"}, `not ""`},
		{"librdkafka name", []string{"--partitions", "3", "--partitioner", "consistent_random", "k"}, "--partitioner must be"},
		{"no keys", []string{"--partitions", "3"}, "at least one KEY is required"},
		{"key with a tab", []string{"--partitions", "3", "a\tb"}, "contains a tab or newline"},
		{"key with a newline", []string{"--partitions", "3", "ok", "a\nb"}, "contains a tab or newline"},
		{"unknown flag", []string{"--partition", "3", "k"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runPartition(context.Background(), tt.args, &stdout, &stderr)
			if code != 2 {
				t.Errorf("exit code %d, want 2", code)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout = %q, want nothing", stdout.String())
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr.String(), tt.wantErr)
			}
			if !strings.Contains(stderr.String(), "usage: kafkaguard partition") {
				t.Errorf("stderr = %q, want the usage line", stderr.String())
			}
		})
	}
}

func TestPartitionHelpExitsZero(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	if code := runPartition(context.Background(), []string{"-h"}, &stdout, &stderr); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	if !strings.Contains(stdout.String(), "--partitions") || stderr.Len() != 0 {
		t.Errorf("help on stdout = %q, stderr %q; want the flags on stdout and nothing on stderr", stdout.String(), stderr.String())
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestPartitionReportsWriteFailureWithExitCode1(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	code := runPartition(context.Background(), []string{"--partitions", "3", "k"}, failingWriter{}, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "disk full") {
		t.Errorf("exit code %d, stderr %q; want 1 and the write error", code, stderr.String())
	}
}
