package cluster_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kafkaguard/kafkaguard/internal/broker/cluster"
	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
	"github.com/kafkaguard/kafkaguard/internal/broker/server"
)

type nopListener struct{}

func (nopListener) OnImage(*meta.Image) {}

// controller returns an in-memory controller with brokers 0..n-1 registered.
func controller(t *testing.T, n int) *cluster.Controller {
	t.Helper()
	c, err := cluster.NewController(cluster.ControllerConfig{SessionTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	for id := range int32(n) {
		if err := c.For(id).Register(context.Background(), meta.Broker{ID: id, Host: "127.0.0.1", Port: 9092 + id, Alive: true}, nopListener{}); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func TestControllerRefusesRequestsAddingTooManyPartitions(t *testing.T) {
	t.Parallel()
	big := map[int32][]int32{}
	for p := range int32(10001) {
		big[p] = []int32{0}
	}
	tests := []struct {
		name  string
		specs []server.TopicSpec
		want  []error // per spec; nil: created
	}{
		{"at the limit", []server.TopicSpec{{Name: "a", Partitions: 10000, ReplicationFactor: 1}}, []error{nil}},
		{"one over the limit", []server.TopicSpec{{Name: "a", Partitions: 10001, ReplicationFactor: 1}}, []error{kerr.PolicyViolation}},
		{"the largest int32", []server.TopicSpec{{Name: "a", Partitions: math.MaxInt32, ReplicationFactor: 1}}, []error{kerr.PolicyViolation}},
		{"manual assignment over the limit", []server.TopicSpec{{Name: "a", Assignment: big}}, []error{kerr.PolicyViolation}},
		{"the sum over the limit fails the topic that crosses it", []server.TopicSpec{
			{Name: "a", Partitions: 6000, ReplicationFactor: 1},
			{Name: "b", Partitions: 6000, ReplicationFactor: 1},
			{Name: "c", Partitions: 4000, ReplicationFactor: 1},
		}, []error{nil, kerr.PolicyViolation, nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := controller(t, 1)
			errs := c.CreateTopics(context.Background(), tt.specs, false)
			for i, want := range tt.want {
				if want == nil && errs[i] != nil || want != nil && !errors.Is(errs[i], want) {
					t.Fatalf("topic %s: %v, want %v", tt.specs[i].Name, errs[i], want)
				}
				if created := c.Image().Topic(tt.specs[i].Name) != nil; created != (want == nil) {
					t.Fatalf("topic %s created=%v, want %v", tt.specs[i].Name, created, want == nil)
				}
			}
		})
	}
}

func TestControllerRefusesGrowingATopicByTooManyPartitions(t *testing.T) {
	t.Parallel()
	c := controller(t, 1)
	if errs := c.CreateTopics(context.Background(), []server.TopicSpec{{Name: "a", Partitions: 5, ReplicationFactor: 1}}, false); errs[0] != nil {
		t.Fatal(errs[0])
	}
	tests := []struct {
		count int32
		want  error
	}{
		{math.MaxInt32, kerr.PolicyViolation},
		{10006, kerr.PolicyViolation},
		{4, kerr.InvalidPartitions},
		{10005, nil},
	}
	for _, tt := range tests {
		err := c.CreatePartitions(context.Background(), "a", tt.count, false)
		if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
			t.Fatalf("grow to %d: %v, want %v", tt.count, err, tt.want)
		}
	}
	if n := len(c.Image().Topic("a").Partitions); n != 10005 {
		t.Fatalf("topic has %d partitions, want 10005", n)
	}
}
