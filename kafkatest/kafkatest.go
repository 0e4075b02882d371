// Package kafkatest starts kafkaguard's bundled Kafka-protocol cluster inside a Go test or
// program, in the spirit of net/http/httptest: one call gives a running cluster on free loopback
// ports with a temporary data directory, Bootstrap gives the addresses for any Kafka client
// (franz-go, sarama, ...), and Close tears it down.
//
//	c := kafkatest.NewCluster(t, kafkatest.Brokers(3), kafkatest.BrokerConfig("min.insync.replicas", "2"))
//	cl, _ := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...))
//
// The cluster replicates for real (ISR, high watermark, leader election) and its faults — Kill,
// PowerLoss, Restart, Isolate, Heal, PauseReplication, Pause, CutLink, CutController,
// SetLatency, FailProduces — let tests reproduce the failures Kafka's reliability settings exist
// for; each applies to one broker (or link), so any subset of brokers can be faulted. Kill is a process crash (nothing is flushed,
// the OS keeps what was written); PowerLoss also loses every byte no fsync covered, which is what
// the topic config flush.messages=1 protects against.
//
// TLS and SASL secure the cluster as a production one is (TLS listeners; PLAIN, SCRAM or
// OAUTHBEARER authentication), so an application's tests can run its security configuration
// against it.
//
// Options have bare names (Brokers, BrokerConfig), as in every kafkaguard package, and are of
// type Opt.
package kafkatest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/cluster"
	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
	"github.com/kafkaguard/kafkaguard/internal/broker/server"
)

// TLS makes every broker's listener speak TLS only, presenting cert; with clientCAs, clients
// must present a certificate one of them signed. The brokers replicate over TLS too. This
// corresponds to Kafka's SSL listeners (ssl.keystore.*, ssl.client.auth=required with
// ssl.truststore.*).
func TLS(cert tls.Certificate, clientCAs *x509.CertPool) Opt {
	return optFunc(func(c *cluster.Config) {
		sec, err := server.NewTLS(cert, clientCAs)
		if err != nil {
			sec = &server.TLS{} // Start refuses it
		}
		c.TLS = sec
	})
}

// SASL makes every connection authenticate first with one of mechanisms ("PLAIN",
// "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"), as users (user -> password; SCRAM
// credentials are derived from the passwords, OAUTHBEARER accepts unsecured tokens as Kafka's
// default validator does). This corresponds to Kafka's sasl.enabled.mechanisms on a SASL
// listener; a failed authentication gets SASL_AUTHENTICATION_FAILED and the connection closed.
func SASL(mechanisms []string, users map[string]string) Opt {
	return optFunc(func(c *cluster.Config) {
		c.SASL = &server.SASL{Mechanisms: slices.Clone(mechanisms), Users: maps.Clone(users)}
	})
}

// Opt configures a cluster (Start, NewCluster). Options have bare names
// (Brokers, not WithBrokers), as in every kafkaguard package.
type Opt interface{ apply(*cluster.Config) }

type optFunc func(*cluster.Config)

func (f optFunc) apply(c *cluster.Config) { f(c) }

// Brokers sets the number of brokers (default 1).
func Brokers(n int) Opt { return optFunc(func(c *cluster.Config) { c.Brokers = n }) }

// BrokerConfig sets a broker-level default for a topic config, e.g. "min.insync.replicas" or
// "unclean.leader.election.enable".
func BrokerConfig(name, value string) Opt {
	return optFunc(func(c *cluster.Config) {
		if c.Defaults == nil {
			c.Defaults = meta.Defaults{}
		}
		c.Defaults[name] = value
	})
}

// SessionTimeout sets how long a silent broker stays alive to the controller (default 1s here,
// so failover tests run fast; Kafka's broker.session.timeout.ms defaults to 9s).
func SessionTimeout(d time.Duration) Opt {
	return optFunc(func(c *cluster.Config) { c.SessionTimeout = d })
}

// ReplicaLagMax sets replica.lag.time.max.ms (default 2s here; Kafka: 30s).
func ReplicaLagMax(d time.Duration) Opt {
	return optFunc(func(c *cluster.Config) { c.ReplicaLagMax = d })
}

// DataDir keeps the cluster's data in dir (and reuses what is there), instead of a temporary
// directory removed by Close.
func DataDir(dir string) Opt { return optFunc(func(c *cluster.Config) { c.DataDir = dir }) }

// Port makes broker i listen on port+i instead of free ports.
func Port(port int) Opt { return optFunc(func(c *cluster.Config) { c.Port = port }) }

// Logger sends the cluster's logs to l (default: discarded).
func Logger(l *slog.Logger) Opt { return optFunc(func(c *cluster.Config) { c.Logger = l }) }

// NoAutoCreateTopics turns auto.create.topics.enable off.
func NoAutoCreateTopics() Opt {
	return optFunc(func(c *cluster.Config) { c.DisableAutoCreateTopics = true })
}

// GroupMinSessionTimeout sets group.min.session.timeout.ms (default 6s, as Kafka), so tests can
// use short consumer session timeouts.
func GroupMinSessionTimeout(d time.Duration) Opt {
	return optFunc(func(c *cluster.Config) { c.GroupMinSessionTimeout = d })
}

// MaxRequestBytes sets socket.request.max.bytes.
func MaxRequestBytes(n int32) Opt {
	return optFunc(func(c *cluster.Config) { c.MaxRequestBytes = n })
}

// UnsafeHWOnCommittedISR re-creates a fixed data-loss bug of the bundled broker (issue 11, item
// 1): a leader advances its high watermark, and answers acks=all, on the committed ISR only while
// a follower's ISR join is pending, so electing that follower can lose acknowledged records. It
// exists only so that kafkaguard's own tests can show their checks find that loss; never use it
// otherwise.
func UnsafeHWOnCommittedISR() Opt {
	return optFunc(func(c *cluster.Config) { c.UnsafeHWOnCommittedISR = true })
}

// Cluster is a running bundled cluster. Its methods are safe for concurrent use.
type Cluster struct {
	c *cluster.Cluster
}

// PartitionInfo is a partition's replication state: leader (-1 when offline), ISR, replicas,
// high watermark and leader epoch.
type PartitionInfo = cluster.PartitionInfo

// BrokerInfo describes one broker: id, address, whether it runs, is fenced, isolated or paused.
type BrokerInfo = cluster.BrokerInfo

// ReplicaInfo is one broker's own replica of a partition.
type ReplicaInfo = cluster.ReplicaInfo

// Start starts a cluster; call Close when done.
func Start(ctx context.Context, opts ...Opt) (*Cluster, error) {
	cfg := cluster.Config{
		Brokers:                1,
		SessionTimeout:         time.Second,
		ReplicaLagMax:          2 * time.Second,
		ReplicaFetchMaxWait:    100 * time.Millisecond,
		GroupMinSessionTimeout: 100 * time.Millisecond,
	}
	for _, o := range opts {
		o.apply(&cfg)
	}
	c, err := cluster.Start(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &Cluster{c: c}, nil
}

// NewCluster starts a cluster for a test, failing it if the cluster cannot start, and closes the
// cluster when the test ends.
func NewCluster(tb testing.TB, opts ...Opt) *Cluster {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := Start(ctx, opts...)
	if err != nil {
		tb.Fatalf("kafkatest: start cluster: %v", err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// Bootstrap returns every broker's host:port, for a client's seed brokers.
func (c *Cluster) Bootstrap() []string { return c.c.Bootstrap() }

// Close stops every broker and removes a temporary data directory.
func (c *Cluster) Close() error { return c.c.Close() }

// Kill stops broker id abruptly (its data is kept); the controller notices after the session
// timeout and elects new leaders from the ISR.
func (c *Cluster) Kill(id int32) error { return c.c.Kill(id) }

// PowerLoss cuts the power of the given brokers at once: each is killed and its files are cut
// back to what had been fsynced (see the cluster package). They stay down until Restart. With
// the default flush.messages (never), losing power on every replica of a partition can lose
// acknowledged records; with flush.messages=1 it cannot.
func (c *Cluster) PowerLoss(ids ...int32) error { return c.c.PowerLoss(ids...) }

// Restart starts a killed broker again on its address and data.
func (c *Cluster) Restart(ctx context.Context, id int32) error { return c.c.Restart(ctx, id) }

// Isolate cuts broker id off from the other brokers and the controller; clients still reach it.
func (c *Cluster) Isolate(id int32) error { return c.c.Isolate(id) }

// Heal reconnects an isolated broker.
func (c *Cluster) Heal(id int32) error { return c.c.Heal(id) }

// PauseReplication stops broker id's replica fetchers.
func (c *Cluster) PauseReplication(id int32) error { return c.c.PauseReplication(id) }

// ResumeReplication restarts broker id's replica fetchers.
func (c *Cluster) ResumeReplication(id int32) error { return c.c.ResumeReplication(id) }

// Pause freezes broker id as SIGSTOP freezes a process: its connections stay open but carry
// nothing, it reaches neither the controller nor the other brokers, and its timers stop, so the
// controller fences it after the session timeout. Resume thaws it and it rejoins.
func (c *Cluster) Pause(id int32) error { return c.c.Pause(id) }

// Resume thaws a paused broker.
func (c *Cluster) Resume(id int32) error { return c.c.Resume(id) }

// CutLink makes broker from unable to reach broker to (one way: to still reaches from), so from
// cannot replicate from to while to replicates from from. HealLink undoes it.
func (c *Cluster) CutLink(from, to int32) error { return c.c.CutLink(from, to) }

// HealLink undoes CutLink.
func (c *Cluster) HealLink(from, to int32) error { return c.c.HealLink(from, to) }

// CutController cuts only broker id's link to the controller: it is fenced after the session
// timeout while it still serves clients and replicates.
func (c *Cluster) CutController(id int32) error { return c.c.CutController(id) }

// ReconnectController restores broker id's link to the controller.
func (c *Cluster) ReconnectController(id int32) error { return c.c.ReconnectController(id) }

// SetLatency adds latency, plus a random part below jitter, to every message broker id
// receives; zero removes it.
func (c *Cluster) SetLatency(id int32, latency, jitter time.Duration) error {
	return c.c.SetLatency(id, latency, jitter)
}

// SetControllerLatency adds latency (plus a random part below jitter) to every message between
// broker id and the controller only, both ways: its heartbeats and ISR changes arrive late, and
// so do the metadata images it receives. Zero removes it.
func (c *Cluster) SetControllerLatency(id int32, latency, jitter time.Duration) error {
	return c.c.SetControllerLatency(id, latency, jitter)
}

// FailProduces makes the current leader of topic/partition answer the next n produce requests
// for it with err (such as kerr.NotEnoughReplicas), after delay, without appending them: the
// transient refusal after which a client retries. Batches a client sent behind a refused one
// still succeed, which is how retries reorder a partition when more than one request is in flight
// without idempotence. n <= 0 disarms the fault.
func (c *Cluster) FailProduces(topic string, partition int32, n int, err *kerr.Error, delay time.Duration) error {
	_, e := c.c.FailProduces(topic, partition, n, err, delay)
	return e
}

// Brokers lists the brokers.
func (c *Cluster) Brokers() []BrokerInfo { return c.c.Brokers() }

// Partition reports a partition's leader, ISR, replicas, high watermark and leader epoch.
func (c *Cluster) Partition(topic string, partition int32) (PartitionInfo, error) {
	return c.c.Partition(topic, partition)
}

// Replica reports broker id's own replica of a partition.
func (c *Cluster) Replica(id int32, topic string, partition int32) (ReplicaInfo, error) {
	return c.c.ReplicaState(id, topic, partition)
}

// ControlHandler serves the JSON fault-control API (see the README).
func (c *Cluster) ControlHandler() http.Handler { return c.c.ControlHandler() }

// WaitPartition polls the partition until cond holds or ctx ends, returning the last state.
func (c *Cluster) WaitPartition(ctx context.Context, topic string, partition int32, cond func(PartitionInfo) bool) (PartitionInfo, error) {
	for {
		info, err := c.Partition(topic, partition)
		if err == nil && cond(info) {
			return info, nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = ctx.Err()
			}
			return info, err
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// CreateTopic creates a topic with the given partitions, replication factor and topic configs,
// over the Kafka protocol like any client, and waits until every partition has a leader and every
// broker's metadata shows the topic.
func (c *Cluster) CreateTopic(ctx context.Context, name string, partitions int32, replicationFactor int16, configs map[string]string) error {
	cl, err := c.c.Dial(ctx, c.Bootstrap()[0], "kafkatest")
	if err != nil {
		return err
	}
	defer cl.Close()
	req := kmsg.NewPtrCreateTopicsRequest()
	req.SetVersion(5)
	req.TimeoutMillis = 30000
	t := kmsg.NewCreateTopicsRequestTopic()
	t.Topic, t.NumPartitions, t.ReplicationFactor = name, partitions, replicationFactor
	for k, v := range configs {
		cfg := kmsg.NewCreateTopicsRequestTopicConfig()
		cfg.Name, cfg.Value = k, kmsg.StringPtr(v)
		t.Configs = append(t.Configs, cfg)
	}
	req.Topics = append(req.Topics, t)
	resp, err := cl.Request(ctx, req)
	if err != nil {
		return err
	}
	r := resp.(*kmsg.CreateTopicsResponse)
	if err := kerr.ErrorForCode(r.Topics[0].ErrorCode); err != nil {
		msg := ""
		if r.Topics[0].ErrorMessage != nil {
			msg = *r.Topics[0].ErrorMessage
		}
		return &TopicError{Topic: name, Err: err, Message: msg}
	}
	for p := int32(0); p < partitions; p++ {
		if _, err := c.WaitPartition(ctx, name, p, func(i PartitionInfo) bool { return i.Leader >= 0 }); err != nil {
			return err
		}
	}
	return c.c.WaitConverged(ctx)
}

// TopicError is a topic operation's Kafka error with the broker's message.
type TopicError struct {
	Topic   string
	Err     error // a kerr error, matchable with errors.Is
	Message string
}

func (e *TopicError) Error() string {
	return "kafkatest: topic " + e.Topic + ": " + e.Err.Error() + ": " + e.Message
}

// Unwrap returns the Kafka error.
func (e *TopicError) Unwrap() error { return e.Err }
