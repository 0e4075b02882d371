package txn

import (
	"context"
	"regexp"
	"slices"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// snapshot returns the metadata of every transactional id of the loaded
// partitions, sorted by id.
func (c *Coordinator) snapshot() []Metadata {
	c.mu.Lock()
	shards := make([]*shard, 0, len(c.shards))
	for _, s := range c.shards {
		shards = append(shards, s)
	}
	c.mu.Unlock()
	var out []Metadata
	for _, s := range shards {
		s.mu.Lock()
		es := make([]*entry, 0, len(s.txns))
		for _, e := range s.txns {
			es = append(es, e)
		}
		s.mu.Unlock()
		for _, e := range es {
			e.mu.Lock()
			out = append(out, e.m)
			e.mu.Unlock()
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TransactionalID < out[j].TransactionalID })
	return out
}

// DescribeTransactions serves DescribeTransactions: each id this coordinator
// owns is described, an unknown one is TRANSACTIONAL_ID_NOT_FOUND, one owned
// elsewhere NOT_COORDINATOR.
func (c *Coordinator) DescribeTransactions(_ context.Context, req *kmsg.DescribeTransactionsRequest) *kmsg.DescribeTransactionsResponse {
	resp := req.ResponseKind().(*kmsg.DescribeTransactionsResponse)
	for _, id := range req.TransactionalIDs {
		st := kmsg.NewDescribeTransactionsResponseTransactionState()
		st.TransactionalID = id
		m, ok := c.Describe(id)
		switch {
		case c.shardFor(id) == nil:
			st.ErrorCode = kerr.NotCoordinator.Code
		case !ok || m.State == Dead:
			st.ErrorCode = kerr.TransactionalIDNotFound.Code
		default:
			st.State, st.TimeoutMillis, st.StartTimestamp = m.State.String(), m.TimeoutMillis, m.StartTimestamp
			st.ProducerID, st.ProducerEpoch = m.ProducerID, m.ProducerEpoch
			for _, p := range m.Partitions {
				if n := len(st.Topics); n > 0 && st.Topics[n-1].Topic == p.Topic {
					st.Topics[n-1].Partitions = append(st.Topics[n-1].Partitions, p.Partition)
					continue
				}
				t := kmsg.NewDescribeTransactionsResponseTransactionStateTopic()
				t.Topic, t.Partitions = p.Topic, []int32{p.Partition}
				st.Topics = append(st.Topics, t)
			}
		}
		resp.TransactionStates = append(resp.TransactionStates, st)
	}
	return resp
}

// ListTransactions serves ListTransactions for the transactional ids this
// coordinator owns, filtered as Kafka's listTransactionStates filters: by
// state name (unknown names are echoed back), producer id, how long the
// transaction has run (v1) and a regular expression on the id (v2; an
// invalid one is INVALID_REGULAR_EXPRESSION).
func (c *Coordinator) ListTransactions(_ context.Context, req *kmsg.ListTransactionsRequest) *kmsg.ListTransactionsResponse {
	resp := req.ResponseKind().(*kmsg.ListTransactionsResponse)
	states := map[string]bool{}
	for _, s := range req.StateFilters {
		known := false
		for st := Empty; st <= PrepareEpochFence; st++ {
			known = known || st.String() == s
		}
		if !known {
			resp.UnknownStateFilters = append(resp.UnknownStateFilters, s)
			continue
		}
		states[s] = true
	}
	var pattern *regexp.Regexp
	if req.Version >= 2 && req.TransactionalIDPattern != nil && *req.TransactionalIDPattern != "" {
		var err error
		// Java's Matcher.matches, as Kafka uses: the whole id must match.
		if pattern, err = regexp.Compile(`^(?:` + *req.TransactionalIDPattern + `)$`); err != nil {
			resp.ErrorCode = kerr.InvalidRegularExpression.Code
			return resp
		}
	}
	if len(resp.UnknownStateFilters) > 0 && len(states) == 0 {
		return resp // only unknown states asked for: none match
	}
	now := c.now()
	for _, m := range c.snapshot() {
		switch {
		case len(states) > 0 && !states[m.State.String()],
			len(req.ProducerIDFilters) > 0 && !slices.Contains(req.ProducerIDFilters, m.ProducerID),
			req.Version >= 1 && req.DurationFilterMillis >= 0 && now-m.StartTimestamp < req.DurationFilterMillis,
			pattern != nil && !pattern.MatchString(m.TransactionalID):
			continue
		}
		ts := kmsg.NewListTransactionsResponseTransactionState()
		ts.TransactionalID, ts.ProducerID, ts.TransactionState = m.TransactionalID, m.ProducerID, m.State.String()
		resp.TransactionStates = append(resp.TransactionStates, ts)
	}
	return resp
}
