package server

import (
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/group"
)

type versionRange struct{ min, max int16 }

// apiVersions lists exactly the APIs and versions this broker implements; ApiVersions advertises
// them and serveConn refuses anything else. It is built once and never changed.
var apiVersions = func() map[int16]versionRange {
	m := map[int16]versionRange{
		0:  {3, 13}, // Produce: v3+ carries v2 record batches; v13 names topics by id
		1:  {4, 18}, // Fetch
		2:  {1, 11}, // ListOffsets
		3:  {0, 13}, // Metadata
		10: {0, 6},  // FindCoordinator
		18: {0, 4},  // ApiVersions
		19: {2, 7},  // CreateTopics
		20: {1, 6},  // DeleteTopics
		22: {0, 4},  // InitProducerID
		24: {0, 4},  // AddPartitionsToTxn (v4: brokers verify a partition, KIP-890 part 1)
		25: {0, 4},  // AddOffsetsToTxn
		26: {0, 4},  // EndTxn (v5 is transaction.version 2)
		27: {0, 1},  // WriteTxnMarkers
		65: {0, 0},  // DescribeTransactions
		66: {0, 2},  // ListTransactions
		61: {0, 0},  // DescribeProducers
		23: {2, 4},  // OffsetForLeaderEpoch
		32: {1, 4},  // DescribeConfigs
		37: {0, 3},  // CreatePartitions
		60: {0, 1},  // DescribeCluster
		17: {1, 1},  // SaslHandshake (v0's unframed tokens are not spoken)
		36: {0, 2},  // SaslAuthenticate
		50: {0, 0},  // DescribeUserScramCredentials
		51: {0, 0},  // AlterUserScramCredentials
	}
	for key, v := range group.Versions() {
		m[key] = versionRange{v[0], v[1]}
	}
	return m
}()

func (b *Broker) handleApiVersions(req *kmsg.ApiVersionsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	keys := make([]int, 0, len(apiVersions))
	for k := range apiVersions {
		keys = append(keys, int(k))
	}
	sort.Ints(keys)
	for _, k := range keys {
		v := apiVersions[int16(k)]
		resp.ApiKeys = append(resp.ApiKeys, kmsg.ApiVersionsResponseApiKey{ApiKey: int16(k), MinVersion: v.min, MaxVersion: v.max})
	}
	// A client that asked with a version we do not speak gets our list in a v0 answer, as Kafka
	// does, and retries with one we do.
	if vr := apiVersions[18]; req.Version > vr.max {
		resp.SetVersion(0)
		resp.ErrorCode = kerr.UnsupportedVersion.Code
	}
	return resp
}
