package retry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/produce"
)

// ErrMissingTopic is wrapped by the error of CheckTopics when a topic does
// not exist.
var ErrMissingTopic = errors.New("retry: topics do not exist")

// CheckTopics reports whether every topic exists: nil if so, otherwise an
// error wrapping ErrMissingTopic that names each missing topic (or the error
// of reading the metadata). A Job needs its retry topic and dead-letter
// topic, and its original topic when it republishes; check them before Run,
// which otherwise fails only once it reads them.
func CheckTopics(ctx context.Context, cl *kgo.Client, topics ...string) error {
	missing, err := missingTopics(ctx, cl, topics)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s", ErrMissingTopic, strings.Join(missing, ", "))
	}
	return nil
}

// CreateTopics creates those of topics that do not exist, with partitions
// partitions, replication factor rf and the no-loss topic configs
// (produce.NoLossTopicConfigs), and returns the names it created. A topic
// that exists is left as it is, and so is one another client created
// meanwhile.
func CreateTopics(ctx context.Context, cl *kgo.Client, partitions int32, rf int16, topics ...string) ([]string, error) {
	missing, err := missingTopics(ctx, cl, topics)
	if err != nil || len(missing) == 0 {
		return nil, err
	}
	resps, err := kadm.NewClient(cl).CreateTopics(ctx, partitions, rf, produce.NoLossTopicConfigs(), missing...)
	if err != nil {
		return nil, fmt.Errorf("retry: creating topics %s: %w", strings.Join(missing, ", "), err)
	}
	var created []string
	var errs []error
	for _, name := range missing {
		r, ok := resps[name]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("retry: creating topic %s: no answer", name))
		case errors.Is(r.Err, kerr.TopicAlreadyExists):
		case r.Err != nil:
			errs = append(errs, fmt.Errorf("retry: creating topic %s (%d partitions, replication factor %d): %w", name, partitions, rf, r.Err))
		default:
			created = append(created, name)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return created, err
	}
	return created, waitTopics(ctx, cl, created)
}

// topicWait bounds how long CreateTopics waits for the topics it created to
// show in the metadata with a leader for every partition.
const topicWait = 30 * time.Second

// waitTopics waits until every broker's metadata shows every topic with a
// leader for each partition: a topic is created on the controller first, and
// the brokers learn of it one by one, a moment later.
func waitTopics(ctx context.Context, cl *kgo.Client, topics []string) error {
	if len(topics) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, topicWait)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := everyBrokerShows(ctx, cl, topics)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("retry: created topics %s do not show in the metadata: %w", strings.Join(topics, ", "), errors.Join(err, ctx.Err()))
		case <-tick.C:
		}
	}
}

// errNotShown says that a broker's metadata does not show a topic yet.
var errNotShown = errors.New("not in every broker's metadata yet")

// everyBrokerShows asks each broker of the cluster for the metadata of
// topics and returns nil if every one shows them all with leaders.
func everyBrokerShows(ctx context.Context, cl *kgo.Client, topics []string) error {
	resp, err := metadata(ctx, cl, topics)
	if err != nil {
		return err
	}
	if !allLed(resp, topics) {
		return errNotShown
	}
	for _, b := range resp.Brokers {
		req := metadataRequest(topics)
		r, err := cl.Broker(int(b.NodeID)).Request(ctx, req)
		if err != nil {
			return err
		}
		if !allLed(r.(*kmsg.MetadataResponse), topics) {
			return fmt.Errorf("broker %d: %w", b.NodeID, errNotShown)
		}
	}
	return nil
}

// allLed reports whether every topic is in resp, with partitions that all
// have a leader.
func allLed(resp *kmsg.MetadataResponse, topics []string) bool {
	led := map[string]bool{}
	for _, t := range resp.Topics {
		ok := t.Topic != nil && t.ErrorCode == 0 && len(t.Partitions) > 0
		for _, p := range t.Partitions {
			ok = ok && p.ErrorCode == 0 && p.Leader >= 0
		}
		if t.Topic != nil {
			led[*t.Topic] = ok
		}
	}
	for _, t := range topics {
		if !led[t] {
			return false
		}
	}
	return true
}

// metadata asks a broker for the metadata of topics, never from the client's
// cache (kadm's answers may be MetadataMinAge old, too old to see a topic
// just created), and never creating a topic.
func metadata(ctx context.Context, cl *kgo.Client, topics []string) (*kmsg.MetadataResponse, error) {
	return metadataRequest(topics).RequestWith(ctx, cl)
}

// metadataRequest asks for the metadata of topics, creating none.
func metadataRequest(topics []string) *kmsg.MetadataRequest {
	req := kmsg.NewPtrMetadataRequest()
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	req.AllowAutoTopicCreation = false
	return req
}

// missingTopics returns the topics the cluster does not know, in the order
// given.
func missingTopics(ctx context.Context, cl *kgo.Client, topics []string) ([]string, error) {
	resp, err := metadata(ctx, cl, topics)
	if err != nil {
		return nil, fmt.Errorf("retry: reading the metadata of %s: %w", strings.Join(topics, ", "), err)
	}
	known := map[string]error{}
	for _, t := range resp.Topics {
		if t.Topic != nil {
			known[*t.Topic] = kerr.ErrorForCode(t.ErrorCode)
		}
	}
	var missing []string
	for _, t := range topics {
		err, ok := known[t]
		switch {
		case !ok || errors.Is(err, kerr.UnknownTopicOrPartition):
			if !slices.Contains(missing, t) {
				missing = append(missing, t)
			}
		case err != nil:
			return nil, fmt.Errorf("retry: reading the metadata of %s: %w", t, err)
		}
	}
	return missing, nil
}
