// Package kafkacluster starts real Apache Kafka KRaft clusters on loopback
// for integration tests, by running kafka.sh from this directory.
//
// kafka.sh fetches Apache Kafka 4.x from Maven Central into a cache outside
// the repository and runs 1 or 3 combined broker+controller nodes from the
// jars with the machine's Java 17+. A test starts a cluster, points its
// clients at [Cluster.Bootstrap], injects faults with [Cluster.Kill] and
// [Cluster.Restart], and stops it:
//
//	c, err := kafkacluster.Start(ctx, 3)
//	if errors.Is(err, kafkacluster.ErrUnavailable) {
//		t.Skip(err)
//	}
//	if err != nil {
//		t.Fatal(err)
//	}
//	defer c.Stop()
//
// The nodes are separate processes detached from the test binary: a cluster
// that is not stopped outlives the test. See README.md for the script.
//
// Options have bare names (Dir, BrokerConfig), as in every kafkaguard
// package, and are of type Opt.
package kafkacluster
