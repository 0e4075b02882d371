package cluster_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kafkaguard/kafkaguard/internal/broker/cluster"
)

func TestRequireBearerRefusesEveryRequestWithoutTheToken(t *testing.T) {
	served := 0
	h := cluster.RequireBearer("s3cret", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served++ }))
	for _, tc := range []struct {
		header string
		want   int
	}{
		{"", http.StatusUnauthorized},
		{"Bearer", http.StatusUnauthorized},
		{"Bearer ", http.StatusUnauthorized},
		{"Bearer wrong!", http.StatusUnauthorized},
		{"Bearer s3cret ", http.StatusUnauthorized},
		{"Bearer s3cre", http.StatusUnauthorized},
		{"Basic s3cret", http.StatusUnauthorized},
		{"bearer s3cret", http.StatusUnauthorized},
		{"Bearer s3cret", http.StatusOK},
	} {
		for _, target := range []string{"GET /cluster", "POST /brokers/0/kill", "GET /nowhere"} {
			method, path, _ := strings.Cut(target, " ")
			req := httptest.NewRequest(method, path, nil)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			before := served
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.want || (served > before) != (tc.want == http.StatusOK) {
				t.Errorf("%s with Authorization %q: status %d (served %v), want %d", target, tc.header, rec.Code, served > before, tc.want)
			}
			if rec.Code == http.StatusUnauthorized && rec.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("%s: 401 without WWW-Authenticate", target)
			}
		}
	}
}
