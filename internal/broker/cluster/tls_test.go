package cluster_test

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kafkaguard/kafkaguard/internal/broker/cluster"
	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
	"github.com/kafkaguard/kafkaguard/internal/broker/server"
	"github.com/kafkaguard/kafkaguard/internal/broker/wire"
	"github.com/kafkaguard/kafkaguard/internal/testkit"
)

// A cluster with TLS replicates over TLS (acks=all with min.insync.replicas=3 needs both
// followers to fetch from the leader), refuses plaintext clients, and its edge faults still
// apply: TLS lies beneath the edge, which reads the Kafka frames.
func TestTLSClusterReplicatesOverTLSAndItsEdgeFaultsStillApply(t *testing.T) {
	ca := testkit.NewCA(t)
	sec, err := server.NewTLS(ca.Issue(t, "broker").TLS, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := cluster.Start(ctx, cluster.Config{
		Brokers: 3, DataDir: t.TempDir(), SessionTimeout: time.Second, ReplicaLagMax: 5 * time.Second,
		ReplicaFetchMaxWait: 50 * time.Millisecond,
		Defaults:            meta.Defaults{meta.ConfigMinISR: "3"},
		TLS:                 sec,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dialer := &tls.Dialer{Config: ca.ClientTLS()}
	createTopicVia(t, c, dialer, "secure", 1, 3)
	leader := mustPartition(t, c, "secure", 0).Leader
	cl, err := wire.Dial(ctx, dialer, c.Brokers()[leader].Address, "tls-test")
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if p := produceRecord(ctx, t, cl, "secure", 0, -1, "v0", 10*time.Second); p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("acks=all produce over TLS: %+v (%v)", p, kerr.ErrorForCode(p.ErrorCode))
	}
	if _, err := c.FailProduces("secure", 0, 1, kerr.NotEnoughReplicas, 0); err != nil {
		t.Fatal(err)
	}
	if p := produceRecord(ctx, t, cl, "secure", 0, -1, "v1", 10*time.Second); p.ErrorCode != kerr.NotEnoughReplicas.Code {
		t.Fatalf("produce with an armed fault over TLS: %+v, want NOT_ENOUGH_REPLICAS", p)
	}
	if p := produceRecord(ctx, t, cl, "secure", 0, -1, "v2", 10*time.Second); p.ErrorCode != 0 || p.BaseOffset != 1 {
		t.Fatalf("produce after the fault: %+v", p)
	}

	plain, err := wire.Dial(ctx, nil, c.Bootstrap()[0], "plaintext")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
	defer pcancel()
	if err := metadata(pctx, plain); err == nil {
		t.Fatal("a plaintext client got a Metadata answer from a TLS listener")
	}
}

func mustPartition(t *testing.T, c *cluster.Cluster, topic string, p int32) cluster.PartitionInfo {
	t.Helper()
	info, err := c.Partition(topic, p)
	if err != nil {
		t.Fatal(err)
	}
	return info
}
