package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestExampleRetriesFailedRecordsInKeyOrderAndDeadLettersThePoisonRecord(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out, 30, 4); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{
		"29 records handled once each, in key order; 1 dead-lettered (acct-1:29)",
		"ALERT dead letter: acct-1:29 after 4 attempts",
		"succeeded on attempt 3",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
