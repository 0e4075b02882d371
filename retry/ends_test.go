package retry_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/kafkaguard/kafkaguard/internal/testkit"
)

// waitCommittedAtEnd waits until group has committed the end offset of every
// partition of topic: every record was finished, so nothing is left that
// the group's consumer could still run. Nothing is written to topic
// meanwhile.
func waitCommittedAtEnd(t *testing.T, e *env, group, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ends := testkit.EndOffsets(ctx, t, e.c.Bootstrap(), topic)
	adm := kadm.NewClient(e.cl)
	testkit.WaitFor(t, 20*time.Second, "the commit to reach the end of "+topic, func() bool {
		offs, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return false
		}
		for p, end := range ends {
			if o, ok := offs.Lookup(topic, p); end > 0 && (!ok || o.At != end) {
				return false
			}
		}
		return true
	})
}
