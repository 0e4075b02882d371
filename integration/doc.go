// Package integration is kafkaguard's integration suite: one set of
// scenarios run unchanged against kafkaguard's bundled broker and against
// real Apache Kafka, so that every behaviour the project claims is shown on
// both, and any difference between them is found.
//
// The scenarios talk to the cluster over the Kafka protocol only (franz-go,
// the produce presets, the ordering dispatcher) and inject faults through
// the [Cluster] interface: SIGKILL and restart a broker, stop a broker from
// replicating. The cluster is chosen by environment (see [FromEnv]):
//
//	go test ./integration/                                    # bundled 3-broker cluster, in-process
//	KAFKAGUARD_TARGET=real go test ./integration/             # 3 Apache Kafka nodes started with kafka/kafka.sh
//	KAFKAGUARD_TARGET=real KAFKA_BOOTSTRAP=127.0.0.1:19092 \
//	KAFKAGUARD_KILL_CMD='integration/kafka/kafka.sh kill {id}' \
//	KAFKAGUARD_RESTART_CMD='integration/kafka/kafka.sh restart {id}' \
//	KAFKAGUARD_PAUSE_CMD='integration/kafka/kafka.sh pause {id}' \
//	KAFKAGUARD_RESUME_CMD='integration/kafka/kafka.sh resume {id}' \
//	go test ./integration/                                    # a running cluster
//
// Every scenario logs target=bundled or target=real on its first line.
// Plain `go test ./...` runs the suite against the bundled cluster only; it
// never starts Apache Kafka. The subdirectory testcontainers holds a
// separate module that runs the scenarios needing one broker and no faults
// against Kafka in Docker (testcontainers-go), skipping when no Docker
// engine is reachable.
package integration
