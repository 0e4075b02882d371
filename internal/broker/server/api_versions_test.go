package server_test

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// supportedAPIs is the broker's API surface, pinned: every change to what ApiVersions advertises
// must change this table and the README's list (checked below) in the same commit.
var supportedAPIs = []struct {
	name     string
	min, max int16
}{
	{"Produce", 3, 13},
	{"Fetch", 4, 18},
	{"ListOffsets", 1, 11},
	{"Metadata", 0, 13},
	{"OffsetCommit", 2, 9},
	{"OffsetFetch", 1, 9},
	{"FindCoordinator", 0, 6},
	{"JoinGroup", 2, 9},
	{"Heartbeat", 0, 4},
	{"LeaveGroup", 0, 5},
	{"SyncGroup", 0, 5},
	{"DescribeGroups", 0, 6},
	{"ListGroups", 0, 5},
	{"ApiVersions", 0, 4},
	{"CreateTopics", 2, 7},
	{"DeleteTopics", 1, 6},
	{"InitProducerID", 0, 4},
	{"AddPartitionsToTxn", 0, 4},
	{"AddOffsetsToTxn", 0, 4},
	{"EndTxn", 0, 4},
	{"TxnOffsetCommit", 0, 4},
	{"WriteTxnMarkers", 0, 1},
	{"DescribeProducers", 0, 0},
	{"DescribeTransactions", 0, 0},
	{"ListTransactions", 0, 2},
	{"OffsetForLeaderEpoch", 2, 4},
	{"DescribeConfigs", 1, 4},
	{"CreatePartitions", 0, 3},
	{"DeleteGroups", 0, 3},
	{"OffsetDelete", 0, 0},
	{"DescribeCluster", 0, 1},
	{"SASLHandshake", 1, 1},
	{"SASLAuthenticate", 0, 2},
	{"DescribeUserSCRAMCredentials", 0, 0},
	{"AlterUserSCRAMCredentials", 0, 0},
}

func pinnedAPIs() []string {
	var want []string
	for _, a := range supportedAPIs {
		want = append(want, fmt.Sprintf("%s %d-%d", a.name, a.min, a.max))
	}
	slices.Sort(want)
	return want
}

func TestApiVersionsAdvertisesExactlyThePinnedAPIs(t *testing.T) {
	t.Parallel()
	b := fzStart(t)
	var got []string
	for _, k := range advertised(t, b) {
		got = append(got, fmt.Sprintf("%s %d-%d", kmsg.NameForKey(k.ApiKey), k.MinVersion, k.MaxVersion))
	}
	slices.Sort(got)
	if want := pinnedAPIs(); !slices.Equal(got, want) {
		t.Fatalf("ApiVersions advertises\n  %s\nthe pinned table says\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// TestReadmeListsExactlyThePinnedAPIs keeps the README's "Supported APIs" paragraph true: every
// entry names an API and its version range ("Produce 3–13"), and the entries are the pinned table.
func TestReadmeListsExactlyThePinnedAPIs(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	start := strings.Index(text, "Supported APIs (exactly what ApiVersions advertises")
	if start < 0 {
		t.Fatal(`README.md has no "Supported APIs (exactly what ApiVersions advertises…" paragraph`)
	}
	para := text[start:]
	if end := strings.Index(para, "\n\n"); end >= 0 {
		para = para[:end]
	}
	para = para[strings.Index(para, "):")+2:]
	if end := strings.Index(para, "."); end >= 0 {
		para = para[:end]
	}
	entry := regexp.MustCompile(`^([A-Za-z]+) (\d+)–(\d+)$`)
	var got []string
	for _, e := range strings.Split(para, ",") {
		e = strings.Join(strings.Fields(e), " ")
		m := entry.FindStringSubmatch(e)
		if m == nil {
			t.Errorf("README entry %q is not of the form \"Name min–max\"", e)
			continue
		}
		lo, _ := strconv.Atoi(m[2])
		hi, _ := strconv.Atoi(m[3])
		got = append(got, fmt.Sprintf("%s %d-%d", m[1], lo, hi))
	}
	slices.Sort(got)
	if want := pinnedAPIs(); !slices.Equal(got, want) {
		t.Fatalf("README lists\n  %s\nthe pinned table says\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}
