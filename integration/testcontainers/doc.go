// Package testcontainers runs kafkaguard's integration scenarios against
// Apache Kafka in Docker, started by testcontainers-go's Kafka module, where
// a Docker engine is reachable. It is a module of its own so that the main
// module's go.mod does not carry testcontainers-go and the Docker client's
// dependency tree.
//
// The Kafka module starts one broker (Confluent's confluent-local image by
// default, KAFKAGUARD_TESTCONTAINERS_IMAGE to change it), so only the
// scenarios that need one broker and no faults run here; the 3-node fault
// scenarios run against kafka.sh's cluster (see package integration). Without
// a Docker engine the test skips, saying why.
package testcontainers
