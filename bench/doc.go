// Package bench holds kafkaguard's end-to-end benchmarks of the bundled broker: produce
// throughput through one broker next to the raw sequential write speed of the same disk, and
// throughput with p50/p99 latency for acks=1 and acks=all on a three-broker cluster. It has no
// API; run it with
//
//	go test -run '^$' -bench . ./bench/
package bench
