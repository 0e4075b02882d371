package brokertest_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/internal/testkit"
)

// TestJavaTransactionsCommandAbortsAHangingTransaction runs Kafka's own kafka-transactions.sh
// (TransactionsCommand) against the bundled cluster while a franz-go producer holds a
// transaction open, as an operator does with a hanging one: describe-producers shows the
// producer's last sequence and the offset its transaction started at (DescribeProducers), and
// abort writes the abort marker itself, after which read_committed reads past it. (describe is
// TestJavaKafkaTransactionsDescribesAnOpenTransaction; list is kadm's, in
// TestKadmDescribesAndListsTransactions: each JVM costs seconds.)
func TestJavaTransactionsCommandAbortsAHangingTransaction(t *testing.T) {
	t.Parallel()
	tool := javaTools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const topic, txnID = "java-txn", "java-hanging"
	c := javaTopic(ctx, t, topic, 1)
	bootstrap := strings.Join(c.Bootstrap(), ",")

	prod := testkit.Client(t, c.Bootstrap(), kgo.DefaultProduceTopic(topic), kgo.TransactionalID(txnID))
	if err := prod.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"open-1", "open-2"} {
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	pid, _, _ := prod.ProducerID(ctx)

	run := func(args ...string) string {
		t.Helper()
		out, err := tool(ctx, "org.apache.kafka.tools.TransactionsCommand", append([]string{"--bootstrap-server", bootstrap}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("kafka-transactions.sh %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if rows := table(run("describe-producers", "--topic", topic, "--partition", "0")); !hasRow(rows, map[string]string{"ProducerId": fmt.Sprint(pid), "LastSequence": "1", "CurrentTransactionStartOffset": "0"}) {
		t.Fatalf("describe-producers does not show producer %d, last sequence 1, its transaction open from offset 0: %v", pid, rows)
	}
	if lso := lastStable(ctx, t, c.Bootstrap(), topic); lso != 0 {
		t.Fatalf("read_committed end offset %d while the transaction is open, want 0", lso)
	}

	run("abort", "--topic", topic, "--partition", "0", "--start-offset", "0")
	testkit.WaitFor(t, 30*time.Second, "the last stable offset to pass the aborted transaction", func() bool {
		return lastStable(ctx, t, c.Bootstrap(), topic) == 3
	})
	if got := readIsolated(ctx, t, c, topic, kgo.ReadUncommitted(), 2); len(got) != 2 {
		t.Fatalf("read_uncommitted read %v, want the two aborted records", got)
	}
}

// table parses a TransactionsCommand table (a header line, then rows, tab-separated columns
// padded with spaces) into one map per row, by column name.
func table(out string) []map[string]string {
	var header []string
	var rows []map[string]string
	for _, line := range strings.Split(out, "\n") {
		cols := strings.Split(line, "\t")
		for i := range cols {
			cols[i] = strings.TrimSpace(cols[i])
		}
		switch {
		case len(cols) < 2:
		case header == nil:
			header = cols
		default:
			row := map[string]string{}
			for i, h := range header {
				if i < len(cols) {
					row[h] = cols[i]
				}
			}
			rows = append(rows, row)
		}
	}
	return rows
}

// hasRow reports whether one of rows has every column of want with its value.
func hasRow(rows []map[string]string, want map[string]string) bool {
	return slices.ContainsFunc(rows, func(r map[string]string) bool {
		for k, v := range want {
			if r[k] != v {
				return false
			}
		}
		return true
	})
}

// lastStable is partition 0's end offset for read_committed (ListOffsets latest, isolation
// level 1: the last stable offset).
func lastStable(ctx context.Context, t *testing.T, bootstrap []string, topic string) int64 {
	t.Helper()
	ends, err := testkit.Admin(t, bootstrap).ListCommittedOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	o, ok := ends.Lookup(topic, 0)
	if !ok || o.Err != nil {
		t.Fatalf("read_committed end offset of %s-0: %+v", topic, o)
	}
	return o.Offset
}
