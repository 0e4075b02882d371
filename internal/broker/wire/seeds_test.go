package wire_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/records"
	"github.com/kafkaguard/kafkaguard/internal/broker/wire"
)

// served lists the APIs and version ranges the bundled broker serves (internal/broker/server's
// apiVersions, including the group coordinator's). The server's FuzzHandle checks the live broker
// against the seeds this file writes, so a drift shows up there.
var served = map[int16][2]int16{
	0: {3, 13}, 1: {4, 18}, 2: {1, 11}, 3: {0, 13}, 8: {2, 9}, 9: {1, 9}, 10: {0, 6}, 11: {2, 9},
	12: {0, 4}, 13: {0, 5}, 14: {0, 5}, 15: {0, 6}, 16: {0, 5}, 18: {0, 4}, 19: {2, 7}, 20: {1, 6},
	22: {0, 4}, 23: {2, 4}, 24: {0, 4}, 25: {0, 4}, 26: {0, 4}, 28: {0, 4}, 27: {0, 1}, 61: {0, 0}, 65: {0, 0}, 66: {0, 2}, 32: {1, 4}, 37: {0, 3}, 42: {0, 3}, 47: {0, 0}, 60: {0, 1},
	17: {1, 1}, 36: {0, 2}, 50: {0, 0}, 51: {0, 0},
}

var fzTopicID = [16]byte{0xfa, 0x57, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}

// request builds a realistic request for key at version v, the way a client fills it in.
func request(key, v int16) kmsg.Request {
	const topic, group, member = "fz", "g", "m"
	str := kmsg.StringPtr
	var r kmsg.Request
	switch key {
	case 0:
		q := kmsg.NewPtrProduceRequest()
		q.Acks, q.TimeoutMillis = -1, 5000
		t := kmsg.NewProduceRequestTopic()
		t.Topic, t.TopicID = topic, fzTopicID
		p := kmsg.NewProduceRequestTopicPartition()
		p.Records = records.Build([]records.Record{{Key: []byte("k"), Value: []byte("v1")}, {Value: []byte("v2")}}, 1700000000000,
			records.Producer{ID: 1000, Epoch: 0, Sequence: 0})
		t.Partitions = append(t.Partitions, p)
		q.Topics = append(q.Topics, t)
		r = q
	case 1:
		q := kmsg.NewPtrFetchRequest()
		q.ReplicaID, q.MaxWaitMillis, q.MinBytes, q.MaxBytes = -1, 100, 1, 1<<20
		q.ReplicaState.ID = -1
		t := kmsg.NewFetchRequestTopic()
		t.Topic, t.TopicID = topic, fzTopicID
		p := kmsg.NewFetchRequestTopicPartition()
		p.CurrentLeaderEpoch, p.PartitionMaxBytes = -1, 1<<20
		t.Partitions = append(t.Partitions, p)
		q.Topics = append(q.Topics, t)
		r = q
	case 2:
		q := kmsg.NewPtrListOffsetsRequest()
		q.ReplicaID = -1
		t := kmsg.NewListOffsetsRequestTopic()
		t.Topic = topic
		p := kmsg.NewListOffsetsRequestTopicPartition()
		p.Timestamp, p.CurrentLeaderEpoch = -1, -1
		t.Partitions = append(t.Partitions, p)
		q.Topics = append(q.Topics, t)
		r = q
	case 3:
		q := kmsg.NewPtrMetadataRequest()
		t := kmsg.NewMetadataRequestTopic()
		t.Topic = str(topic)
		q.Topics = append(q.Topics, t)
		r = q
	case 8:
		q := kmsg.NewPtrOffsetCommitRequest()
		q.Group, q.Generation, q.MemberID = group, -1, ""
		t := kmsg.NewOffsetCommitRequestTopic()
		t.Topic = topic
		p := kmsg.NewOffsetCommitRequestTopicPartition()
		p.Offset, p.LeaderEpoch, p.Metadata = 1, -1, str("meta")
		t.Partitions = append(t.Partitions, p)
		q.Topics = append(q.Topics, t)
		r = q
	case 9:
		q := kmsg.NewPtrOffsetFetchRequest()
		q.Group = group
		t := kmsg.NewOffsetFetchRequestTopic()
		t.Topic, t.Partitions = topic, []int32{0}
		q.Topics = append(q.Topics, t)
		g := kmsg.NewOffsetFetchRequestGroup()
		g.Group = group
		gt := kmsg.NewOffsetFetchRequestGroupTopic()
		gt.Topic, gt.Partitions = topic, []int32{0}
		g.Topics = append(g.Topics, gt)
		q.Groups = append(q.Groups, g)
		r = q
	case 10:
		q := kmsg.NewPtrFindCoordinatorRequest()
		q.CoordinatorKey, q.CoordinatorKeys = group, []string{group}
		r = q
	case 11:
		q := kmsg.NewPtrJoinGroupRequest()
		q.Group, q.SessionTimeoutMillis, q.RebalanceTimeoutMillis, q.ProtocolType = group, 10000, 10000, "consumer"
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name, p.Metadata = "range", []byte{0, 1, 0, 0, 0, 1, 0, 2, 'f', 'z', 0, 0, 0, 0}
		q.Protocols = append(q.Protocols, p)
		r = q
	case 12:
		q := kmsg.NewPtrHeartbeatRequest()
		q.Group, q.Generation, q.MemberID = group, 1, member
		r = q
	case 13:
		q := kmsg.NewPtrLeaveGroupRequest()
		q.Group, q.MemberID = group, member
		m := kmsg.NewLeaveGroupRequestMember()
		m.MemberID = member
		q.Members = append(q.Members, m)
		r = q
	case 14:
		q := kmsg.NewPtrSyncGroupRequest()
		q.Group, q.Generation, q.MemberID = group, 1, member
		q.ProtocolType, q.Protocol = str("consumer"), str("range")
		a := kmsg.NewSyncGroupRequestGroupAssignment()
		a.MemberID, a.MemberAssignment = member, []byte{0, 1, 0, 0, 0, 1, 0, 2, 'f', 'z', 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}
		q.GroupAssignment = append(q.GroupAssignment, a)
		r = q
	case 15:
		q := kmsg.NewPtrDescribeGroupsRequest()
		q.Groups = []string{group}
		r = q
	case 16:
		q := kmsg.NewPtrListGroupsRequest()
		q.StatesFilter = []string{"Stable"}
		r = q
	case 18:
		q := kmsg.NewPtrApiVersionsRequest()
		q.ClientSoftwareName, q.ClientSoftwareVersion = "kafkaguard", "1.0"
		r = q
	case 19:
		q := kmsg.NewPtrCreateTopicsRequest()
		q.TimeoutMillis = 5000
		t := kmsg.NewCreateTopicsRequestTopic()
		t.Topic, t.NumPartitions, t.ReplicationFactor = "fz-new", 2, 1
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = "min.insync.replicas", str("1")
		t.Configs = append(t.Configs, c)
		q.Topics = append(q.Topics, t)
		r = q
	case 20:
		q := kmsg.NewPtrDeleteTopicsRequest()
		q.TimeoutMillis = 5000
		q.TopicNames = []string{"fz-new"}
		t := kmsg.NewDeleteTopicsRequestTopic()
		t.Topic = str("fz-new")
		q.Topics = append(q.Topics, t)
		r = q
	case 22:
		q := kmsg.NewPtrInitProducerIDRequest()
		q.TransactionTimeoutMillis, q.ProducerID, q.ProducerEpoch = -1, -1, -1
		r = q
	case 23:
		q := kmsg.NewPtrOffsetForLeaderEpochRequest()
		q.ReplicaID = -1
		t := kmsg.NewOffsetForLeaderEpochRequestTopic()
		t.Topic = topic
		p := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		p.CurrentLeaderEpoch, p.LeaderEpoch = -1, 0
		t.Partitions = append(t.Partitions, p)
		q.Topics = append(q.Topics, t)
		r = q
	case 32:
		q := kmsg.NewPtrDescribeConfigsRequest()
		res := kmsg.NewDescribeConfigsRequestResource()
		res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeTopic, topic
		q.Resources = append(q.Resources, res)
		r = q
	case 37:
		q := kmsg.NewPtrCreatePartitionsRequest()
		q.TimeoutMillis = 5000
		t := kmsg.NewCreatePartitionsRequestTopic()
		t.Topic, t.Count = topic, 3
		q.Topics = append(q.Topics, t)
		r = q
	case 42:
		q := kmsg.NewPtrDeleteGroupsRequest()
		q.Groups = []string{group}
		r = q
	case 47:
		q := kmsg.NewPtrOffsetDeleteRequest()
		q.Group = group
		t := kmsg.NewOffsetDeleteRequestTopic()
		t.Topic = topic
		t.Partitions = append(t.Partitions, kmsg.NewOffsetDeleteRequestTopicPartition())
		q.Topics = append(q.Topics, t)
		r = q
	case 60:
		r = kmsg.NewPtrDescribeClusterRequest()
	case 17:
		q := kmsg.NewPtrSASLHandshakeRequest()
		q.Mechanism = "SCRAM-SHA-256"
		r = q
	case 36:
		q := kmsg.NewPtrSASLAuthenticateRequest()
		q.SASLAuthBytes = []byte("n,,n=fz,r=fyko+d2lbbFgONRv9qkxdawL")
		r = q
	case 24:
		q := kmsg.NewPtrAddPartitionsToTxnRequest()
		if v >= 4 { // a partition leader verifying, in the brokers' batched form
			tx := kmsg.NewAddPartitionsToTxnRequestTransaction()
			tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, tx.VerifyOnly = "fz-txn", 1000, 0, true
			t := kmsg.NewAddPartitionsToTxnRequestTransactionTopic()
			t.Topic, t.Partitions = topic, []int32{0}
			tx.Topics = append(tx.Topics, t)
			q.Transactions = append(q.Transactions, tx)
		} else {
			q.TransactionalID, q.ProducerID, q.ProducerEpoch = "fz-txn", 1000, 0
			t := kmsg.NewAddPartitionsToTxnRequestTopic()
			t.Topic, t.Partitions = topic, []int32{0}
			q.Topics = append(q.Topics, t)
		}
		r = q
	case 25:
		q := kmsg.NewPtrAddOffsetsToTxnRequest()
		q.TransactionalID, q.ProducerID, q.ProducerEpoch, q.Group = "fz-txn", 1000, 0, group
		r = q
	case 28:
		q := kmsg.NewPtrTxnOffsetCommitRequest()
		q.TransactionalID, q.Group, q.ProducerID, q.ProducerEpoch = "fz-txn", group, 1000, 0
		q.Generation, q.MemberID = 1, member
		t := kmsg.NewTxnOffsetCommitRequestTopic()
		t.Topic = topic
		p := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		p.Offset, p.LeaderEpoch, p.Metadata = 7, 0, str("m")
		t.Partitions = append(t.Partitions, p)
		q.Topics = append(q.Topics, t)
		r = q
	case 26:
		q := kmsg.NewPtrEndTxnRequest()
		q.TransactionalID, q.ProducerID, q.ProducerEpoch, q.Commit = "fz-txn", 1000, 0, true
		r = q
	case 27:
		q := kmsg.NewPtrWriteTxnMarkersRequest()
		m := kmsg.NewWriteTxnMarkersRequestMarker()
		m.ProducerID, m.ProducerEpoch, m.Committed = 1000, 0, false
		t := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
		t.Topic, t.Partitions = topic, []int32{0}
		m.Topics = append(m.Topics, t)
		q.Markers = append(q.Markers, m)
		r = q
	case 61:
		q := kmsg.NewPtrDescribeProducersRequest()
		t := kmsg.NewDescribeProducersRequestTopic()
		t.Topic, t.Partitions = topic, []int32{0}
		q.Topics = append(q.Topics, t)
		r = q
	case 65:
		q := kmsg.NewPtrDescribeTransactionsRequest()
		q.TransactionalIDs = []string{"fz-txn"}
		r = q
	case 66:
		q := kmsg.NewPtrListTransactionsRequest()
		q.StateFilters, q.ProducerIDFilters, q.DurationFilterMillis = []string{"Ongoing"}, []int64{1000}, 1000
		q.TransactionalIDPattern = str("fz-.*")
		r = q
	case 50:
		q := kmsg.NewPtrDescribeUserSCRAMCredentialsRequest()
		u := kmsg.NewDescribeUserSCRAMCredentialsRequestUser()
		u.Name = "fz"
		q.Users = append(q.Users, u)
		r = q
	case 51:
		q := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
		u := kmsg.NewAlterUserSCRAMCredentialsRequestUpsertion()
		u.Name, u.Mechanism, u.Iterations = "fz", 1, 4096
		u.Salt, u.SaltedPassword = []byte("salt"), make([]byte, 32)
		q.Upsertions = append(q.Upsertions, u)
		d := kmsg.NewAlterUserSCRAMCredentialsRequestDeletion()
		d.Name, d.Mechanism = "gone", 2
		q.Deletions = append(q.Deletions, d)
		r = q
	default:
		panic(fmt.Sprintf("no seed request for key %d", key))
	}
	r.SetVersion(v)
	return r
}

// encode returns a request frame (without its size prefix), as a client sends it.
func encode(r kmsg.Request, corr int32, clientID string) []byte {
	f := kmsg.NewRequestFormatter(kmsg.FormatterClientID(clientID))
	return f.AppendRequest(nil, r, corr)[4:]
}

// seedFrames returns one realistic request frame per served API at its lowest and highest
// served version, named for the corpus.
func seedFrames() map[string][]byte {
	out := map[string][]byte{}
	for key, vr := range served {
		for _, v := range slices.Compact([]int16{vr[0], vr[1]}) {
			name := fmt.Sprintf("%02d-%s-v%d", key, kmsg.NameForKey(key), v)
			out[name] = encode(request(key, v), int32(key)*100+int32(v), "kafkaguard-seed")
		}
	}
	return out
}

// corpusFile is the `go test fuzz v1` encoding of one []byte input.
func corpusFile(b []byte) string {
	return "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
}

// TestSeedCorpusHoldsEveryServedAPIAtBothEnds checks that the checked-in corpus of
// FuzzParseRequest has a decodable request of every served API at its lowest and highest
// version. KAFKAGUARD_WRITE_CORPUS=1 (re)writes those seed files.
func TestSeedCorpusHoldsEveryServedAPIAtBothEnds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzParseRequest")
	seeds := seedFrames()
	if os.Getenv("KAFKAGUARD_WRITE_CORPUS") == "1" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range seeds {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(corpusFile(b)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	var missing []string
	for name, want := range seeds {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			missing = append(missing, name)
			continue
		}
		got, ok := strings.CutPrefix(string(b), "go test fuzz v1\n[]byte(")
		got, ok2 := strings.CutSuffix(got, ")\n")
		unq, err := strconv.Unquote(got)
		if !ok || !ok2 || err != nil {
			t.Errorf("%s: not a go test fuzz v1 []byte file", name)
			continue
		}
		h, req, err := wire.ParseRequest([]byte(unq))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if h.Key != req.Key() || string(encode(req, h.CorrelationID, h.ClientID)) != string(want) {
			t.Errorf("%s: does not hold the request seedFrames builds (run with KAFKAGUARD_WRITE_CORPUS=1)", name)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("corpus lacks %v (run with KAFKAGUARD_WRITE_CORPUS=1)", missing)
	}
}
