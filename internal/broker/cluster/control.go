package cluster

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// ControlHandler serves the fault-control API as JSON:
//
//	GET  /cluster                          {"brokers":[{"id":0,"address":"127.0.0.1:9092","alive":true,...}],
//	                                        "cut_links":[{"from":0,"to":1}]}
//	GET  /partitions/{topic}/{partition}   {"leader":0,"isr":[0,1,2],"replicas":[0,1,2],"hw":123,"leader_epoch":2}
//	GET  /brokers/{id}/partitions/{topic}/{partition}
//	                                       {"leo":130,"hw":123,"log_start":0,"leader":0,"leader_epoch":2}
//	                                       (that broker's own replica, as it sees itself)
//	POST /brokers/{id}/kill | restart | isolate | heal | pause-replication | resume-replication
//	POST /brokers/{id}/power-loss          kill the broker and cut its files back to what was
//	                                       fsynced (it stays down until restart)
//	POST /brokers/{id}/pause | resume      freeze the broker process (SIGSTOP) and thaw it
//	POST /brokers/{id}/cut-controller | reconnect-controller
//	                                       cut (restore) only its link to the controller
//	POST /brokers/{id}/cut-link?to=1,2 | heal-link?to=1,2
//	                                       one way: the broker cannot (can again) reach those
//	                                       brokers, which still reach it
//	POST /brokers/{id}/latency?latency=200ms&jitter=50ms
//	                                       add latency (plus up to jitter) to every message the
//	                                       broker receives; latency=0 removes it
//	POST /brokers/{id}/controller-latency?latency=2s&jitter=100ms
//	                                       add latency (plus up to jitter) to every message
//	                                       between the broker and the controller only, both
//	                                       ways; latency=0 removes it
//	POST /partitions/{topic}/{partition}/fail-produce?count=1&error=NOT_ENOUGH_REPLICAS&delay=200ms
//	                                       {"ok":true,"broker":0,...}: the partition's leader answers
//	                                       its next count produce requests with that Kafka error,
//	                                       after delay, without appending (count=0 disarms)
//
// Errors answer {"error":"..."} with 404 for unknown brokers or partitions, 409 for a fault that
// does not fit the broker's state, 400 for a malformed path.
func (c *Cluster) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /cluster", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"brokers": c.Brokers(), "cut_links": c.CutLinks()})
	})
	mux.HandleFunc("GET /partitions/{topic}/{partition}", func(w http.ResponseWriter, r *http.Request) {
		p, err := strconv.ParseInt(r.PathValue("partition"), 10, 32)
		if err != nil {
			writeErr(w, http.StatusBadRequest, errors.New("partition must be an integer"))
			return
		}
		info, err := c.Partition(r.PathValue("topic"), int32(p))
		if err != nil {
			writeErr(w, http.StatusNotFound, err)
			return
		}
		writeJSON(w, http.StatusOK, info)
	})
	mux.HandleFunc("GET /brokers/{id}/partitions/{topic}/{partition}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 32)
		if err != nil {
			writeErr(w, http.StatusBadRequest, errors.New("broker id must be an integer"))
			return
		}
		p, err := strconv.ParseInt(r.PathValue("partition"), 10, 32)
		if err != nil {
			writeErr(w, http.StatusBadRequest, errors.New("partition must be an integer"))
			return
		}
		info, err := c.ReplicaState(int32(id), r.PathValue("topic"), int32(p))
		if err != nil {
			writeErr(w, errStatus(err), err)
			return
		}
		writeJSON(w, http.StatusOK, info)
	})
	mux.HandleFunc("POST /partitions/{topic}/{partition}/fail-produce", func(w http.ResponseWriter, r *http.Request) {
		p, err := strconv.ParseInt(r.PathValue("partition"), 10, 32)
		if err != nil {
			writeErr(w, http.StatusBadRequest, errors.New("partition must be an integer"))
			return
		}
		q := r.URL.Query()
		count, delay, kerrName := 1, time.Duration(0), "NOT_ENOUGH_REPLICAS"
		if v := q.Get("count"); v != "" {
			if count, err = strconv.Atoi(v); err != nil || count < 0 {
				writeErr(w, http.StatusBadRequest, errors.New("count must be a whole number"))
				return
			}
		}
		if v := q.Get("delay"); v != "" {
			if delay, err = time.ParseDuration(v); err != nil || delay < 0 {
				writeErr(w, http.StatusBadRequest, errors.New("delay must be a duration such as 200ms"))
				return
			}
		}
		if v := q.Get("error"); v != "" {
			kerrName = v
		}
		kerrValue, ok := kafkaErrorNamed(kerrName)
		if !ok {
			writeErr(w, http.StatusBadRequest, errors.New("error must be a Kafka error name such as NOT_ENOUGH_REPLICAS, got "+kerrName))
			return
		}
		topic := r.PathValue("topic")
		leader, err := c.FailProduces(topic, int32(p), count, kerrValue, delay)
		if err != nil {
			writeErr(w, errStatus(err), err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "broker": leader, "topic": topic, "partition": p,
			"count": count, "error": kerrValue.Message, "delay": delay.String()})
	})
	mux.HandleFunc("POST /brokers/{id}/{action}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 32)
		if err != nil {
			writeErr(w, http.StatusBadRequest, errors.New("broker id must be an integer"))
			return
		}
		bid := int32(id)
		q := r.URL.Query()
		var actions = map[string]func() error{
			"pause":                func() error { return c.Pause(bid) },
			"resume":               func() error { return c.Resume(bid) },
			"cut-controller":       func() error { return c.CutController(bid) },
			"reconnect-controller": func() error { return c.ReconnectController(bid) },
			"cut-link":             func() error { return eachBroker(q.Get("to"), func(to int32) error { return c.CutLink(bid, to) }) },
			"heal-link":            func() error { return eachBroker(q.Get("to"), func(to int32) error { return c.HealLink(bid, to) }) },
			"latency": func() error {
				return latencyParams(q, func(latency, jitter time.Duration) error { return c.SetLatency(bid, latency, jitter) })
			},
			"controller-latency": func() error {
				return latencyParams(q, func(latency, jitter time.Duration) error { return c.SetControllerLatency(bid, latency, jitter) })
			},
			"kill":               func() error { return c.Kill(bid) },
			"power-loss":         func() error { return c.PowerLoss(bid) },
			"isolate":            func() error { return c.Isolate(bid) },
			"heal":               func() error { return c.Heal(bid) },
			"pause-replication":  func() error { return c.PauseReplication(bid) },
			"resume-replication": func() error { return c.ResumeReplication(bid) },
			"restart": func() error {
				ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
				defer cancel()
				return c.Restart(ctx, bid)
			},
		}
		act, ok := actions[r.PathValue("action")]
		if !ok {
			writeErr(w, http.StatusNotFound, errors.New("unknown action "+r.PathValue("action")))
			return
		}
		if err := act(); err != nil {
			writeErr(w, errStatus(err), err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "broker": bid, "action": r.PathValue("action")})
	})
	return mux
}

// errBadParam is a malformed query parameter (400).
var errBadParam = errors.New("bad parameter")

// eachBroker calls fn with each id of a comma-separated list such as "1,2".
func eachBroker(list string, fn func(id int32) error) error {
	if list == "" {
		return fmt.Errorf("%w: to must list broker ids, such as to=1,2", errBadParam)
	}
	var ids []int32
	for _, f := range strings.Split(list, ",") {
		id, err := strconv.ParseInt(strings.TrimSpace(f), 10, 32)
		if err != nil {
			return fmt.Errorf("%w: to must list broker ids, such as to=1,2; got %q", errBadParam, list)
		}
		ids = append(ids, int32(id))
	}
	for _, id := range ids {
		if err := fn(id); err != nil {
			return err
		}
	}
	return nil
}

// latencyParams calls set with the latency and jitter parameters (absent: 0).
func latencyParams(q url.Values, set func(latency, jitter time.Duration) error) error {
	latency, err := durationParam(q, "latency")
	if err != nil {
		return err
	}
	jitter, err := durationParam(q, "jitter")
	if err != nil {
		return err
	}
	return set(latency, jitter)
}

// durationParam parses an optional duration parameter such as 200ms (absent: 0).
func durationParam(q url.Values, name string) (time.Duration, error) {
	v := q.Get(name)
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%w: %s must be a duration such as 200ms, got %q", errBadParam, name, v)
	}
	return d, nil
}

// kafkaErrorNamed returns the Kafka error with the given name, such as NOT_ENOUGH_REPLICAS.
func kafkaErrorNamed(name string) (*kerr.Error, bool) {
	for code := int16(1); code < 512; code++ {
		if e := kerr.TypedErrorForCode(code); e.Code == code && e.Message == name {
			return e, true
		}
	}
	return nil, false
}

// errStatus maps the cluster's errors to HTTP status codes.
func errStatus(err error) int {
	switch {
	case errors.Is(err, ErrUnknownBroker), errors.Is(err, ErrUnknownPartition):
		return http.StatusNotFound
	case errors.Is(err, ErrBrokerState):
		return http.StatusConflict
	case errors.Is(err, errBadParam):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

// RequireBearer serves h only to requests carrying "Authorization: Bearer
// token"; others get 401 with {"error":"..."} and a WWW-Authenticate
// header. Tokens are compared in constant time (over their SHA-256, so that
// not even the length leaks). An empty token is refused: guard with a token
// or not at all.
func RequireBearer(token string, h http.Handler) http.Handler {
	if token == "" {
		panic("cluster: RequireBearer with an empty token")
	}
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(got))
		if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kafkaguard control"`)
			writeErr(w, http.StatusUnauthorized, errors.New("this control API needs Authorization: Bearer <token>"))
			return
		}
		h.ServeHTTP(w, r)
	})
}
