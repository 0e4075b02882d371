package testcontainers

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	tc "github.com/testcontainers/testcontainers-go"
	tckafka "github.com/testcontainers/testcontainers-go/modules/kafka"

	"github.com/kafkaguard/kafkaguard/integration"
)

// defaultImage is the image testcontainers-go's Kafka module supports.
const defaultImage = "confluentinc/confluent-local:7.5.0"

func TestTestcontainersKafkaRunsSingleBrokerScenarios(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := dockerHealth(ctx); err != nil {
		t.Skipf("no Docker engine reachable: %v", err)
	}
	image := os.Getenv("KAFKAGUARD_TESTCONTAINERS_IMAGE")
	if image == "" {
		image = defaultImage
	}
	kc, err := tckafka.Run(ctx, image, tckafka.WithClusterID("kafkaguard"))
	if err != nil {
		t.Fatalf("start %s: %v", image, err)
	}
	t.Cleanup(func() {
		if err := tc.TerminateContainer(kc); err != nil {
			t.Errorf("terminate %s: %v", image, err)
		}
	})
	brokers, err := kc.Brokers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, err := integration.External(brokers[0], integration.Commands{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("target=real (testcontainers %s at %v)", image, brokers)
	ran := 0
	for _, s := range integration.Scenarios() {
		if s.Brokers > 1 || len(s.Faults) > 0 {
			continue
		}
		integration.Run(t, c, s)
		ran++
	}
	if ran == 0 {
		t.Fatal("no scenario fits one broker without faults")
	}
}

// dockerHealth reports whether testcontainers-go can reach a Docker engine.
// testcontainers-go panics when it finds no Docker host at all; that is
// turned into an error here.
func dockerHealth(ctx context.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("testcontainers-go: %v", r)
		}
	}()
	p, err := tc.NewDockerProvider()
	if err != nil {
		return err
	}
	defer p.Close()
	return p.Health(ctx)
}
