package txn

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestDescribeAndListTransactionsShowTheCoordinatorsState(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a := f.c.InitProducerID(ctx, initReq("app-a", -1, -1))
	addCode(t, f.c.AddPartitionsToTxn(ctx, addReq("app-a", a.ProducerID, 0, "out", 1, 0)))
	b := f.c.InitProducerID(ctx, initReq("other-b", -1, -1))
	f.advance(5 * time.Second)

	dreq := kmsg.NewPtrDescribeTransactionsRequest()
	dreq.TransactionalIDs = []string{"app-a", "nobody"}
	d := f.c.DescribeTransactions(ctx, dreq)
	got := d.TransactionStates[0]
	if got.ErrorCode != 0 || got.State != "Ongoing" || got.ProducerID != a.ProducerID || got.ProducerEpoch != 0 ||
		got.TimeoutMillis != 60000 || got.StartTimestamp != 1_000_000 || len(got.Topics) != 1 || len(got.Topics[0].Partitions) != 2 {
		t.Fatalf("describe app-a: %+v", got)
	}
	if code := d.TransactionStates[1].ErrorCode; code != kerr.TransactionalIDNotFound.Code {
		t.Fatalf("describe an unknown id: code %d, want TRANSACTIONAL_ID_NOT_FOUND", code)
	}

	list := func(v int16, fill func(*kmsg.ListTransactionsRequest)) *kmsg.ListTransactionsResponse {
		r := kmsg.NewPtrListTransactionsRequest()
		r.Version = v
		fill(r)
		return f.c.ListTransactions(ctx, r)
	}
	ids := func(resp *kmsg.ListTransactionsResponse) []string {
		var out []string
		for _, s := range resp.TransactionStates {
			out = append(out, s.TransactionalID+"/"+s.TransactionState)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		v    int16
		fill func(*kmsg.ListTransactionsRequest)
		want []string
	}{
		{"all", 0, func(*kmsg.ListTransactionsRequest) {}, []string{"app-a/Ongoing", "other-b/Empty"}},
		{"by state", 0, func(r *kmsg.ListTransactionsRequest) { r.StateFilters = []string{"Ongoing"} }, []string{"app-a/Ongoing"}},
		{"by producer", 0, func(r *kmsg.ListTransactionsRequest) { r.ProducerIDFilters = []int64{b.ProducerID} }, []string{"other-b/Empty"}},
		{"running 5 s", 1, func(r *kmsg.ListTransactionsRequest) { r.DurationFilterMillis = 5000 }, []string{"app-a/Ongoing", "other-b/Empty"}},
		{"running 6 s", 1, func(r *kmsg.ListTransactionsRequest) {
			r.DurationFilterMillis, r.StateFilters = 6000, []string{"Ongoing"}
		}, nil},
		{"by pattern", 2, func(r *kmsg.ListTransactionsRequest) { r.TransactionalIDPattern = kmsg.StringPtr("app-.*") }, []string{"app-a/Ongoing"}},
		{"pattern matches whole ids", 2, func(r *kmsg.ListTransactionsRequest) { r.TransactionalIDPattern = kmsg.StringPtr("app") }, nil},
	} {
		if got := ids(list(tc.v, tc.fill)); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	unknown := list(0, func(r *kmsg.ListTransactionsRequest) { r.StateFilters = []string{"Bogus"} })
	if len(unknown.TransactionStates) != 0 || len(unknown.UnknownStateFilters) != 1 {
		t.Errorf("unknown state filter: %+v", unknown)
	}
	if bad := list(2, func(r *kmsg.ListTransactionsRequest) { r.TransactionalIDPattern = kmsg.StringPtr("(") }); bad.ErrorCode != kerr.InvalidRegularExpression.Code {
		t.Errorf("invalid pattern: code %d", bad.ErrorCode)
	}
}
