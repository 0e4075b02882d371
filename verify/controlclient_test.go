package verify

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kafkaguard/kafkaguard/internal/broker/cluster"
	"github.com/kafkaguard/kafkaguard/kafkatest"
)

func TestControlClientSendsTheToken(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	srv := httptest.NewServer(cluster.RequireBearer("tok", c.ControlHandler()))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.CreateTopic(ctx, "guarded", 1, 1, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ControlFaults(srv.URL, nil).Leader(ctx, "guarded", 0); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("without the token: %v, want 401", err)
	}
	if _, err := ControlFaults(srv.URL, ControlClient("wrong")).Leader(ctx, "guarded", 0); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("with a wrong token: %v, want 401", err)
	}
	if leader, err := ControlFaults(srv.URL, ControlClient("tok")).Leader(ctx, "guarded", 0); err != nil || leader != 0 {
		t.Fatalf("with the token: leader %d, %v", leader, err)
	}
}
