package consume

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// checkKgoOpts reads the user's kgo options from a client that is never
// started (its context is cancelled before it is made) and refuses those
// that contradict the consumer. It returns the group.
func checkKgoOpts(opts []kgo.Opt, drainTimeout time.Duration) (string, error) {
	if len(opts) == 0 {
		return "", fmt.Errorf("%w: KgoOpts (or Client) is required (kgo.SeedBrokers, kgo.ConsumerGroup, kgo.ConsumeTopics)", ErrInvalidOption)
	}
	dead, cancel := context.WithCancel(context.Background())
	cancel()
	probe, err := kgo.NewClient(append(slices.Clone(opts), kgo.WithContext(dead))...)
	if err != nil {
		return "", fmt.Errorf("%w: kgo refuses the options: %w", ErrInvalidOption, err)
	}
	defer probe.Close()

	var errs []error
	group, err := checkSettings(probe, drainTimeout)
	errs = append(errs, err)
	// kgo wraps the partition callbacks of a group client, so OptValue
	// cannot tell whether the user set one. Without a group kgo refuses a
	// callback, so each option is validated on its own and its error
	// compared with the one a callback gets.
	ref := kgo.ValidateOpts(kgo.OnPartitionsLost(func(context.Context, *kgo.Client, map[string][]int32) {}))
	if ref != nil {
		for i, o := range opts {
			if err := kgo.ValidateOpts(o); err != nil && err.Error() == ref.Error() {
				errs = append(errs, fmt.Errorf("%w: KgoOpts option %d sets a partition callback (kgo.OnPartitionsAssigned, Revoked or Lost): "+
					"the consumer owns them (it drains and commits on revocation)", ErrInvalidOption, i))
			}
		}
	}
	return group, errors.Join(errs...)
}

// checkClient refuses an application's client that was not created for a
// Consumer: without Hooks, with auto-commit, or without a group or topics.
// It returns the group.
func checkClient(cl *kgo.Client, h *Hooks, drainTimeout time.Duration) (string, error) {
	group, err := checkSettings(cl, drainTimeout)
	errs := []error{err}
	if h == nil {
		errs = append(errs, fmt.Errorf("%w: Client needs the Hooks whose KgoOpts the client was created with", ErrInvalidOption))
	}
	for _, o := range []struct {
		opt  any
		name string
	}{{kgo.DisableAutoCommit, "kgo.DisableAutoCommit"}, {kgo.BlockRebalanceOnPoll, "kgo.BlockRebalanceOnPoll"}} {
		if on, _ := cl.OptValue(o.opt).(bool); !on {
			errs = append(errs, fmt.Errorf("%w: Client: the client lacks %s; create it with Hooks.KgoOpts", ErrInvalidOption, o.name))
		}
	}
	return group, errors.Join(errs...)
}

// checkSettings refuses the settings of cl that contradict the consumer. It
// returns the group.
func checkSettings(cl *kgo.Client, drainTimeout time.Duration) (string, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOption}, args...)...))
	}
	group, _ := cl.OptValue(kgo.ConsumerGroup).(string)
	if group == "" {
		bad("kgo.ConsumerGroup is required: offsets are committed for a group")
	}
	if share, _ := cl.OptValue(kgo.ShareGroup).(string); share != "" {
		bad("kgo.ShareGroup %q: share groups acknowledge records, they do not commit offsets", share)
	}
	if topics, _ := cl.OptValue(kgo.ConsumeTopics).([]string); len(topics) == 0 {
		bad("kgo.ConsumeTopics (or kgo.ConsumeRegex) is required")
	}
	if rt, ok := cl.OptValue(kgo.RebalanceTimeout).(time.Duration); ok && drainTimeout >= rt {
		bad("DrainTimeout %v must be below kgo.RebalanceTimeout %v, or a revocation outlives the rebalance", drainTimeout, rt)
	}
	if on, _ := cl.OptValue(kgo.AutoCommitMarks).(bool); on {
		bad("kgo.AutoCommitMarks re-enables auto-commit; remove it: the consumer commits what it has handled")
	}
	if on, _ := cl.OptValue(kgo.GreedyAutoCommit).(bool); on {
		bad("kgo.GreedyAutoCommit re-enables auto-commit and commits records before they are handled; remove it")
	}
	return group, errors.Join(errs...)
}
