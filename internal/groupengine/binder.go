package groupengine

import (
	"context"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Binder gives the engine's kgo options to a client created before its
// Engine (a client the application owns): its partition callbacks wait until
// Bind, or until the client is closed, and then act as the bound Engine's.
// Until Bind no partition is assigned, so no record can be polled that the
// Engine does not know of.
type Binder struct {
	once  sync.Once
	bound chan struct{}
	e     *Engine
}

// NewBinder returns a Binder that is not bound yet.
func NewBinder() *Binder { return &Binder{bound: make(chan struct{})} }

// Opts returns the kgo options of Engine.Opts, forwarding to the Engine
// bound later.
func (b *Binder) Opts() []kgo.Opt {
	return []kgo.Opt{
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(func(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
			if e := b.wait(ctx); e != nil {
				e.assigned(ctx, cl, m)
			}
		}),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
			if e := b.wait(ctx); e != nil {
				e.revoked(ctx, cl, m)
			}
		}),
		kgo.OnPartitionsLost(func(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
			if e := b.wait(ctx); e != nil {
				e.lost(ctx, cl, m)
			}
		}),
	}
}

// Bind binds e; it reports false if the Binder was bound already (to e or
// another Engine), which it then keeps.
func (b *Binder) Bind(e *Engine) bool {
	ok := false
	b.once.Do(func() {
		b.e, ok = e, true
		close(b.bound)
	})
	return ok
}

// wait returns the bound Engine, or nil if ctx ends first.
func (b *Binder) wait(ctx context.Context) *Engine {
	select {
	case <-b.bound:
		return b.e
	case <-ctx.Done():
		return nil
	}
}
