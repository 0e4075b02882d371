package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/produce"
	"github.com/kafkaguard/kafkaguard/retry"
)

const retryJobLong = `Runs the retry Job for one topic until SIGINT or SIGTERM, then shuts it down
gracefully: it consumes the failure markers parked on the retry topic (default
TOPIC.retry), waits until each is due (exponential backoff with jitter), runs
the action, re-parks the record on failure and writes it to the dead-letter
topic (default TOPIC.dlq) after --max-attempts. With --header-mode spring it
reads and writes Spring Kafka's retry-topic and DLT headers instead, on
TOPIC-retry and TOPIC-dlt by default, so that it shares those topics with
Spring services (give --retry-topic TOPIC-retry-0 for Spring's per-attempt
topics). With --exactly-once each marker's outcome (a re-park, a dead letter,
the republished record) is written in one transaction with the retry topic's
offset commit, and the retry topic is read read_committed: killed and
restarted, the job neither loses nor doubles an outcome as read_committed
readers see them. Its transactional id is GROUP/INSTANCE (--instance, default
the host name): give each instance its own name, stable across its restarts.
The HTTP or exec action itself may still run twice (at-least-once side
effects); only the Kafka outputs are exactly once. See
'go doc github.com/kafkaguard/kafkaguard/retry' for the marker format, which
producers in any language can write.

Before it starts, it checks that its topics exist: the retry topic, the
dead-letter topic and, with --action republish, TOPIC. A missing topic is an
error (exit status 1) unless --create-topics is given, which creates the
missing ones as no-loss topics: replication factor --replication-factor
(default 3), min.insync.replicas=2, unclean.leader.election.enable=false,
with TOPIC's number of partitions (or --partitions).

Once the Job is set up it prints exactly one line to stdout:

	ready retry_topic=T.retry dlq_topic=T.dlq group=G action=A[ exactly_once=GROUP/INSTANCE][ metrics=http://HOST:PORT/metrics]

With --metrics, /metrics has the retry job's counts (kafkaguard_retry_*) and,
with --action republish, the republished records' (kafkaguard_produce_*);
the same server answers /healthz (200 while the process runs)
and /readyz (200 from the ready line until shutdown begins, 503 otherwise),
for liveness and readiness probes.

Exit status: 0 after a graceful shutdown on SIGINT or SIGTERM, 1 when the Job
could not start or failed, 2 for bad usage.`

// newRetryJobCmd is "kafkaguard retry-job": it runs the retry Job for one topic until the context
// ends (SIGINT/SIGTERM), then shuts it down gracefully. Once the Job is set up it prints exactly
// one line to stdout:
//
//	ready retry_topic=T.retry dlq_topic=T.dlq group=G action=A[ metrics=http://HOST:PORT/metrics]
func newRetryJobCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "retry-job --bootstrap LIST --topic T [flags]",
		Short: "Run the retry job for the failed records of a topic",
		Long:  retryJobLong + securityHelp,
		Example: `  kafkaguard retry-job --bootstrap 127.0.0.1:9092 --topic orders --metrics :9100
  kafkaguard retry-job --bootstrap 127.0.0.1:9092 --topic orders --action http://localhost:8080/retry
  kafkaguard retry-job --bootstrap 127.0.0.1:9092 --topic orders --action 'exec:./handle --strict' --key-order`,
		Args: noArgs,
	}
	fs := cmd.Flags()
	bootstrap := fs.String("bootstrap", "", "comma-separated host:port list of Kafka brokers (required)")
	topic := fs.String("topic", "", "topic whose failed records are retried (required)")
	retryTopic := fs.String("retry-topic", "", "retry topic (default TOPIC.retry, or TOPIC-retry with --header-mode spring)")
	dlqTopic := fs.String("dlq-topic", "", "dead-letter topic (default TOPIC.dlq, or TOPIC-dlt with --header-mode spring)")
	headerMode := fs.String("header-mode", "kafkaguard", "header format of the markers and dead letters written: kafkaguard, or spring (Spring Kafka's retry_topic-* and kafka_dlt-* headers, to share topics with Spring services); both are read")
	group := fs.String("group", "", "consumer group on the retry topic (default kafkaguard-retry-RETRYTOPIC)")
	maxAttempts := intFlag(fs, "max-attempts", retry.DefaultMaxAttempts, atLeast(1), "handler runs per record, the consumer's first one included, before it is dead-lettered")
	action := fs.String("action", "republish", "what a retry does: republish (write the record back to TOPIC), http://URL or https://URL (POST the value; 2xx is success), exec:CMD (run CMD, split on spaces, with the value on stdin; exit 0 is success)")
	metricsAddr := fs.String("metrics", "", "serve Prometheus metrics on HOST:PORT at /metrics (e.g. :9100)")
	initial := durationFlag(fs, "backoff-initial", retry.DefaultInitialBackoff, positive[time.Duration](), "delay after the first failed attempt")
	maxBackoff := durationFlag(fs, "backoff-max", retry.DefaultMaxBackoff, positive[time.Duration](), "longest delay between attempts, at least --backoff-initial")
	jitter := floatFlag(fs, "backoff-jitter", retry.DefaultJitter, bound[float64]{func(v float64) bool { return v >= 0 && v < 1 }, "in [0, 1)"}, "random spread of each delay")
	concurrency := intFlag(fs, "concurrency", retry.DefaultConcurrency, atLeast(1), "retries that run at once")
	keyOrder := fs.Bool("key-order", false, "retry the records of one key in order (the consumers must park with key order too; not with republish)")
	alertBacklog := intFlag(fs, "alert-backlog", 0, atLeast(0), "log an alert while more markers than this are pending (0: off)")
	alertAge := durationFlag(fs, "alert-age", 0, atLeast(time.Duration(0)), "log an alert while the oldest marker is older than this (0: off)")
	alertDead := intFlag(fs, "alert-dead-letters", 1, atLeast(0), "log an alert for every dead letter once this many were written (0: off)")
	createTopics := fs.Bool("create-topics", false, "create the missing topics as no-loss topics (replication factor --replication-factor, min.insync.replicas=2, unclean leader election off) instead of failing")
	partitions := intFlag(fs, "partitions", 0, atLeast(0), "partitions of the topics --create-topics creates (0: as many as TOPIC has, 1 if it does not exist)")
	replicationFactor := intFlag(fs, "replication-factor", produce.MinReplicationFactor, atLeast(1), "replication factor of the topics --create-topics creates")
	exactlyOnce := fs.Bool("exactly-once", false, "write each marker's outcome (re-park, dead letter, republished record) in one transaction with the retry topic's offset commit, and read the retry topic read_committed (not with --key-order)")
	instance := fs.String("instance", "", "with --exactly-once, this instance's name, stable across its restarts: the transactional id is GROUP/INSTANCE (default the host name)")
	sec := addSecurityFlags(fs)
	newLogger := logFlag(fs)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, stdout, stderr := cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr()
		if *bootstrap == "" || *topic == "" {
			return usageErrorf("--bootstrap and --topic are required")
		}
		mode, err := retry.ParseHeaderMode(*headerMode)
		if err != nil {
			return usageErrorf("--header-mode must be kafkaguard or spring, got %q", *headerMode)
		}
		if mode == retry.SpringHeaders && *keyOrder {
			return usageErrorf("--key-order needs --header-mode kafkaguard (Spring has no resolution records)")
		}
		if *exactlyOnce && *keyOrder {
			return usageErrorf("--key-order cannot be combined with --exactly-once yet")
		}
		if *instance != "" && !*exactlyOnce {
			return usageErrorf("--instance needs --exactly-once")
		}
		if *maxBackoff < *initial {
			return usageErrorf("--backoff-max (%v) must be at least --backoff-initial (%v)", *maxBackoff, *initial)
		}
		secOpts, err := sec.kgoOpts()
		if err != nil {
			return err
		}
		// The cluster's seed brokers and security, for every client.
		connect := append([]kgo.Opt{kgo.SeedBrokers(strings.Split(*bootstrap, ",")...)}, secOpts...)
		logger := newLogger(stderr)

		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		metrics, err := retry.NewMetrics(reg)
		if err != nil {
			return failure(err)
		}

		var handler retry.Handler
		var producer *kgo.Client
		switch a := *action; {
		case a == "republish":
			if *keyOrder {
				return usageErrorf("--key-order cannot be kept by --action republish (the record goes to the back of its topic)")
			}
			// The republished records' outcomes: kafkaguard_produce_*.
			pm, err := produce.NewMetrics(reg)
			if err != nil {
				return failure(err)
			}
			opts, err := produce.ApplyKgo(produce.NoLoss, append(slices.Clone(connect), kgo.WithHooks(pm)))
			if err == nil {
				producer, err = kgo.NewClient(opts...)
			}
			if err != nil {
				return failure(fmt.Errorf("producer: %w", err))
			}
			defer producer.Close()
			if handler, err = retry.Republish(producer); err != nil {
				return failure(err)
			}
		case strings.HasPrefix(a, "http://") || strings.HasPrefix(a, "https://"):
			handler = retry.HTTPPost(a, &http.Client{Timeout: time.Minute})
		case strings.HasPrefix(a, "exec:"):
			argv := strings.Fields(strings.TrimPrefix(a, "exec:"))
			if len(argv) == 0 {
				return usageErrorf("--action exec: needs a command")
			}
			handler = retry.Exec(argv[0], argv[1:]...)
		default:
			return usageErrorf("--action must be republish, http://URL, https://URL or exec:CMD, got %q", a)
		}

		// Options of both the Job and the key locks, then the Job's own.
		shared := []retry.GroupOpt{retry.Topic(*topic), retry.KgoOpts(connect...), retry.Logger(logger), retry.Headers(mode)}
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
		if *exactlyOnce {
			name := *instance
			if name == "" {
				if name, err = os.Hostname(); err != nil {
					return failure(fmt.Errorf("--instance: no host name to default to: %w", err))
				}
			}
			opts = append(opts, retry.ExactlyOnce(name))
			*instance = name
		}
		// Validate every option before touching the network.
		if _, err := retry.NewJob(handler, opts...); err != nil {
			return usageErrorf("%v", err)
		}
		rt := *retryTopic
		if rt == "" {
			rt = retry.DefaultRetryTopic(*topic, mode)
		}
		dt := *dlqTopic
		if dt == "" {
			dt = retry.DefaultDeadLetterTopic(*topic, mode)
		}
		g := *group
		if g == "" {
			g = retry.DefaultGroup(rt)
		}

		// /healthz, /readyz and /metrics answer from the start; /readyz
		// says 200 only from the ready line until shutdown begins.
		var ready atomic.Bool
		var metricsURL string
		if *metricsAddr != "" {
			ln, err := net.Listen("tcp", *metricsAddr)
			if err != nil {
				return failure(fmt.Errorf("--metrics: %w", err))
			}
			srv := &http.Server{Handler: retryJobMux(reg, &ready), ReadHeaderTimeout: 5 * time.Second}
			go func() {
				if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
					logger.Error("metrics server stopped", "err", err)
				}
			}()
			defer srv.Close()
			metricsURL = "http://" + ln.Addr().String() + "/metrics"
		}

		needed := []string{rt, dt}
		if *action == "republish" {
			needed = append(needed, *topic)
		}
		if err := ensureRetryTopics(ctx, connect, needed, *topic, *createTopics, int32(*partitions), int16(*replicationFactor), logger); err != nil {
			return failure(err)
		}

		if *keyOrder {
			lockOpts := make([]retry.LocksOpt, len(shared))
			for i, o := range shared {
				lockOpts[i] = o
			}
			locks, err := retry.NewKeyLocks(ctx, lockOpts...)
			if err != nil {
				return failure(err)
			}
			defer locks.Close()
			opts = append(opts, retry.KeyOrder(locks))
		}
		job, err := retry.NewJob(handler, opts...)
		if err != nil {
			return usageErrorf("%v", err)
		}

		line := fmt.Sprintf("ready retry_topic=%s dlq_topic=%s group=%s action=%s", rt, dt, g, strings.SplitN(*action, ":", 2)[0])
		if *exactlyOnce {
			line += " exactly_once=" + retry.TransactionalID(g, *instance)
		}
		if metricsURL != "" {
			line += " metrics=" + metricsURL
		}
		ready.Store(true)
		fmt.Fprintln(stdout, line)
		err = job.Run(ctx)
		ready.Store(false)
		if err != nil {
			return failure(err)
		}
		return nil
	}
	return cmd
}

// retryJobMux serves /metrics from reg, /healthz (200 while the process
// serves) and /readyz (200 while ready is set, else 503).
func retryJobMux(reg *prometheus.Registry, ready *atomic.Bool) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}

// ensureRetryTopics checks that the retry job's topics exist; with create it
// first creates the missing ones as no-loss topics, with partitions
// partitions (0: as many as topic has, or 1).
func ensureRetryTopics(ctx context.Context, connect []kgo.Opt, topics []string, topic string, create bool, partitions int32, rf int16, logger *slog.Logger) error {
	cl, err := kgo.NewClient(connect...)
	if err != nil {
		return fmt.Errorf("admin client: %w", err)
	}
	defer cl.Close()
	if create {
		if partitions == 0 {
			partitions = 1
			if d, err := kadm.NewClient(cl).ListTopics(ctx, topic); err == nil && d.Has(topic) && d[topic].Err == nil && len(d[topic].Partitions) > 0 {
				partitions = int32(len(d[topic].Partitions))
			}
		}
		created, err := retry.CreateTopics(ctx, cl, partitions, rf, topics...)
		for _, name := range created {
			logger.Info("retry-job: topic created", "topic", name, "partitions", partitions, "replication_factor", rf)
		}
		if err != nil {
			return err
		}
	}
	if err := retry.CheckTopics(ctx, cl, topics...); err != nil {
		if errors.Is(err, retry.ErrMissingTopic) {
			return fmt.Errorf("%w (create them as no-loss topics, or pass --create-topics)", err)
		}
		return err
	}
	return nil
}
