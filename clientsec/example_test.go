package clientsec_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/clientsec"
	"github.com/kafkaguard/kafkaguard/kafkatest"
)

// The client properties file a Java client or Kafka's own tools take (--command-config) becomes
// franz-go options; kafkatest's bundled broker stands in for a cluster that requires SASL.
func ExampleLoadProperties() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := kafkatest.Start(ctx, kafkatest.SASL([]string{"SCRAM-SHA-512"}, map[string]string{"app": "app-secret"}))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	dir, err := os.MkdirTemp("", "clientsec-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "client.properties")
	props := `security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="app" password="app-secret";
client.id=billing
`
	if err := os.WriteFile(path, []byte(props), 0o600); err != nil {
		log.Fatal(err)
	}

	s, err := clientsec.LoadProperties(path) // client.id is not a security key: ignored
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(s.Protocol, s.Mechanism, s.Username)
	opts, err := s.KgoOpts()
	if err != nil {
		log.Fatal(err)
	}
	cl, err := kgo.NewClient(append(opts, kgo.SeedBrokers(c.Bootstrap()...))...)
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	fmt.Println("authenticated:", cl.Ping(ctx) == nil)
	// Output:
	// SASL_PLAINTEXT SCRAM-SHA-512 app
	// authenticated: true
}
