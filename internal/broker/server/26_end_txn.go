package server

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// handleEndTxn commits or aborts a producer's transaction (versions 0-4): the answer comes once
// the coordinator has durably prepared it; the markers follow.
func (b *Broker) handleEndTxn(ctx context.Context, req *kmsg.EndTxnRequest) kmsg.Response {
	return b.txns.EndTxn(ctx, req)
}
