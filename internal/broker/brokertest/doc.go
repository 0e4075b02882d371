// Package brokertest holds end-to-end behaviour tests of the bundled broker, driven by real
// clients: franz-go, sarama, kcat (librdkafka) and Apache Kafka's Java tools, and raw Kafka
// protocol requests. Each test starts a cluster through package kafkatest and checks what Kafka
// 4.4 guarantees or answers — replication and failover (acks, ISR, high watermark, unclean
// election, power loss), produce validation, idempotence, consumer groups and committed offsets
// — with the client's own view of the outcome.
//
// The package has no code of its own, only tests. The Java tests run Kafka's tools through
// integration/kafka/kafka.sh and skip unless Java and Kafka's jars are available (set
// KAFKAGUARD_JAVA_TOOLS=1 to fetch the jars); the kcat test skips unless kcat is on PATH. CI
// installs both and runs them.
package brokertest
