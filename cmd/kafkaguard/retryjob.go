package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/produce"
	"github.com/kafkaguard/kafkaguard/retry"
)

// runRetryJob runs the retry Job for one topic until the context ends (SIGINT/SIGTERM), then
// shuts it down gracefully. Once the Job is set up it prints exactly one line to stdout:
//
//	ready retry_topic=T.retry dlq_topic=T.dlq group=G action=A[ metrics=http://HOST:PORT/metrics]
func runRetryJob(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("retry-job", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: kafkaguard retry-job --bootstrap LIST --topic T [flags]")
		fmt.Fprintln(stderr, "Retries the failed records parked on T's retry topic; see 'go doc github.com/kafkaguard/kafkaguard/retry' for the marker format.")
		fs.PrintDefaults()
	}
	bootstrap := fs.String("bootstrap", "", "comma-separated host:port list of Kafka brokers (required)")
	topic := fs.String("topic", "", "topic whose failed records are retried (required)")
	retryTopic := fs.String("retry-topic", "", "retry topic (default TOPIC.retry)")
	dlqTopic := fs.String("dlq-topic", "", "dead-letter topic (default TOPIC.dlq)")
	group := fs.String("group", "", "consumer group on the retry topic (default kafkaguard-retry-RETRYTOPIC)")
	maxAttempts := fs.Int("max-attempts", retry.DefaultMaxAttempts, "handler runs per record, the consumer's first one included, before it is dead-lettered")
	action := fs.String("action", "republish", "what a retry does: republish (write the record back to TOPIC), http://URL or https://URL (POST the value; 2xx is success), exec:CMD (run CMD, split on spaces, with the value on stdin; exit 0 is success)")
	metricsAddr := fs.String("metrics", "", "serve Prometheus metrics on HOST:PORT at /metrics (e.g. :9100)")
	initial := fs.Duration("backoff-initial", retry.DefaultInitialBackoff, "delay after the first failed attempt")
	maxBackoff := fs.Duration("backoff-max", retry.DefaultMaxBackoff, "longest delay between attempts")
	jitter := fs.Float64("backoff-jitter", retry.DefaultJitter, "random spread of each delay, in [0, 1)")
	concurrency := fs.Int("concurrency", retry.DefaultConcurrency, "retries that run at once")
	keyOrder := fs.Bool("key-order", false, "retry the records of one key in order (the consumers must park with key order too; not with republish)")
	alertBacklog := fs.Int("alert-backlog", 0, "log an alert while more markers than this are pending (0: off)")
	alertAge := fs.Duration("alert-age", 0, "log an alert while the oldest marker is older than this (0: off)")
	alertDead := fs.Int("alert-dead-letters", 1, "log an alert for every dead letter once this many were written (0: off)")
	newLogger := logFlag(fs)
	if code, done := parseFlags(fs, args); done {
		return code
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "kafkaguard retry-job: "+format+"\n", a...)
		return 2
	}
	if fs.NArg() > 0 {
		return usage("unexpected arguments %q", fs.Args())
	}
	if *bootstrap == "" || *topic == "" {
		return usage("--bootstrap and --topic are required")
	}
	seeds := strings.Split(*bootstrap, ",")
	logger := newLogger(stderr)

	var handler retry.Handler
	var producer *kgo.Client
	switch a := *action; {
	case a == "republish":
		if *keyOrder {
			return usage("--key-order cannot be kept by --action republish (the record goes to the back of its topic)")
		}
		opts, err := produce.ApplyKgo(produce.NoLoss, []kgo.Opt{kgo.SeedBrokers(seeds...)})
		if err == nil {
			producer, err = kgo.NewClient(opts...)
		}
		if err != nil {
			fmt.Fprintf(stderr, "kafkaguard retry-job: producer: %v\n", err)
			return 1
		}
		defer producer.Close()
		if handler, err = retry.Republish(producer); err != nil {
			fmt.Fprintf(stderr, "kafkaguard retry-job: %v\n", err)
			return 1
		}
	case strings.HasPrefix(a, "http://") || strings.HasPrefix(a, "https://"):
		handler = retry.HTTPPost(a, &http.Client{Timeout: time.Minute})
	case strings.HasPrefix(a, "exec:"):
		cmd := strings.Fields(strings.TrimPrefix(a, "exec:"))
		if len(cmd) == 0 {
			return usage("--action exec: needs a command")
		}
		handler = retry.Exec(cmd[0], cmd[1:]...)
	default:
		return usage("--action must be republish, http://URL, https://URL or exec:CMD, got %q", a)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics, err := retry.NewMetrics(reg)
	if err != nil {
		fmt.Fprintf(stderr, "kafkaguard retry-job: %v\n", err)
		return 1
	}
	// Options of both the Job and the key locks, then the Job's own.
	shared := []retry.GroupOpt{retry.Topic(*topic), retry.KgoOpts(kgo.SeedBrokers(seeds...)), retry.Logger(logger)}
	if *retryTopic != "" {
		shared = append(shared, retry.RetryTopic(*retryTopic))
	}
	if *group != "" {
		shared = append(shared, retry.Group(*group))
	}
	opts := []retry.JobOpt{
		retry.MaxAttempts(*maxAttempts),
		retry.RetryBackoff(retry.Backoff{Initial: *initial, Max: *maxBackoff, Multiplier: retry.DefaultMultiplier, Jitter: *jitter}),
		retry.Concurrency(*concurrency),
		retry.MaxBuffered(max(retry.DefaultMaxBuffered, *concurrency)),
		retry.ReportMetrics(metrics),
		retry.OnAlert(retry.Thresholds{Backlog: *alertBacklog, Age: *alertAge, DeadLetters: *alertDead}, nil),
	}
	for _, o := range shared {
		opts = append(opts, o)
	}
	if *dlqTopic != "" {
		opts = append(opts, retry.DeadLetterTopic(*dlqTopic))
	}
	// Validate every option before touching the network.
	if _, err := retry.NewJob(handler, opts...); err != nil {
		return usage("%v", err)
	}
	if *keyOrder {
		lockOpts := make([]retry.LocksOpt, len(shared))
		for i, o := range shared {
			lockOpts[i] = o
		}
		locks, err := retry.NewKeyLocks(ctx, lockOpts...)
		if err != nil {
			fmt.Fprintf(stderr, "kafkaguard retry-job: %v\n", err)
			return 1
		}
		defer locks.Close()
		opts = append(opts, retry.KeyOrder(locks))
	}
	job, err := retry.NewJob(handler, opts...)
	if err != nil {
		return usage("%v", err)
	}

	rt := *retryTopic
	if rt == "" {
		rt = *topic + retry.RetrySuffix
	}
	dt := *dlqTopic
	if dt == "" {
		dt = *topic + retry.DeadLetterSuffix
	}
	g := *group
	if g == "" {
		g = retry.DefaultGroup(rt)
	}
	ready := fmt.Sprintf("ready retry_topic=%s dlq_topic=%s group=%s action=%s", rt, dt, g, strings.SplitN(*action, ":", 2)[0])
	if *metricsAddr != "" {
		ln, err := net.Listen("tcp", *metricsAddr)
		if err != nil {
			fmt.Fprintf(stderr, "kafkaguard retry-job: --metrics: %v\n", err)
			return 1
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("metrics server stopped", "err", err)
			}
		}()
		defer srv.Close()
		ready += " metrics=http://" + ln.Addr().String() + "/metrics"
	}
	fmt.Fprintln(stdout, ready)
	if err := job.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "kafkaguard retry-job: %v\n", err)
		return 1
	}
	return 0
}
