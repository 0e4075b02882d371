package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// ControlHandler serves the fault-control API as JSON:
//
//	GET  /cluster                          {"brokers":[{"id":0,"address":"127.0.0.1:9092","alive":true,...}]}
//	GET  /partitions/{topic}/{partition}   {"leader":0,"isr":[0,1,2],"replicas":[0,1,2],"hw":123,"leader_epoch":2}
//	GET  /brokers/{id}/partitions/{topic}/{partition}
//	                                       {"leo":130,"hw":123,"log_start":0,"leader":0,"leader_epoch":2}
//	                                       (that broker's own replica, as it sees itself)
//	POST /brokers/{id}/kill | restart | isolate | heal | pause-replication | resume-replication
//	POST /brokers/{id}/power-loss          kill the broker and cut its files back to what was
//	                                       fsynced (it stays down until restart)
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
		writeJSON(w, http.StatusOK, map[string]any{"brokers": c.Brokers()})
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
		var actions = map[string]func() error{
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
