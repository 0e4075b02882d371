package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/IBM/sarama"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/kafkatest"
	"github.com/kafkaguard/kafkaguard/produce"
	"github.com/kafkaguard/kafkaguard/verify"
	"github.com/kafkaguard/kafkaguard/verify/report"
)

const verifyLong = `Produces a workload — N records over K keys, each value "k<key>:<seq>" — with
each producer preset while each fault schedule hits the cluster, reads every
record back and prints one row per run: acked, lost (acked, never read),
duplicated, reordered within a key, unacked-present (read back though never
acknowledged, which is allowed) and a verdict. Progress goes to stderr.

Without --bootstrap it starts the bundled 3-broker cluster in this process
and runs every preset under every fault. With --bootstrap it runs against that
cluster, creating one topic per run (replication factor 3,
min.insync.replicas=2) and keeping it; faults come from --control (a cluster
started with "kafkaguard broker --control") or from shell commands in which
{broker} stands for the node id the cluster's metadata names (also in
$KAFKAGUARD_BROKER): --fault-exec and --restart-exec kill and restart a
broker, e.g. --fault-exec 'docker kill kafka-{broker}'; --pause-exec and
--resume-exec freeze and thaw its process (SIGSTOP, SIGCONT), e.g.
'docker pause kafka-{broker}'; --isolate-exec and --heal-exec cut it off
from the other brokers and the controller (clients still reach it) and
reconnect it; --pause-replication-exec and --resume-replication-exec stop
and start its replica fetchers. Each pair goes together. For a cluster
started with integration/kafka/kafka.sh (node ids 1..N):
--fault-exec 'kafka.sh kill {broker}'
--restart-exec 'kafka.sh restart {broker} --no-wait'
--pause-exec 'kafka.sh pause {broker}' --resume-exec 'kafka.sh resume {broker}'
(a restart must not wait for the broker to answer: a schedule heals one fault
at a time, and a node may not come back while others are still paused). A
schedule the fault source cannot carry out is shown as n/a under --fault
all; one named with --fault fails the run (exit status 1).

--schedules N runs N seeded random fault schedules instead (seeds --seed,
--seed+1, ...; without --seed the seed comes from the clock and is printed):
each draws windows of kill, restart, power loss, pause, isolation, one-way
and controller-only partitions, latency, controller-link latency and paused
replication, on the leader, a follower, the controller or random brokers,
from what the fault source can do, and ends healed. The same seed on the same cluster replays the
same schedule. Each row names its seed; a failing row prints the command that
replays it. Without --preset, --schedules runs NoLoss and StrictOrder. Under
every run the checker names anomalies as Jepsen does (lost-write, unseen,
duplicate, inconsistent-offsets, nonmonotonic-poll, poll-skip,
reordered-within-key; indeterminate records are counted, not anomalies),
with up to five examples each.

Fault schedules: none, kill-leader, kill-follower, isolate-leader,
pause-followers-then-kill-leader ("all"), and power-loss-all-replicas, run
only when named: every replica of a partition loses power at once and
everything it had not fsynced. With the default flush policy that may lose
acknowledged records under any preset (verdict "allowed without fsync");
with --topic-config flush.messages=1 NoLoss must lose nothing. It needs the
bundled cluster or --control.

--topic-config sets extra configs on each run's topic, e.g. flush.messages=1.

--report DIR writes DIR/index.html, one self-contained page (it opens with
no network) with, per run, a timeline of the fault windows per broker, the
producer's throughput and ack latency (p50, p99) per 100 ms, lag (records
acknowledged above the high watermark while producing, and the read-back
consumer's lag), and the anomalies with examples; it prints the file's path
on stderr. --json carries the same series in each result's "timeline".

--workload queue runs the queue workload instead of the producer one: the
same producer and fault schedule, while --consumers consumers built with
kafkaguard's consume package (each --order mode: KeyOrder, PartitionOrder,
Unordered, "all" by default) handle the topic in one group, and --crashes
times one of them crashes at random — its connections cut, so it neither
commits nor leaves the group — and restarts (the crash plan is seeded by
--queue-seed; run i uses seed --queue-seed+i). The order modes run as one
consumer group each, all at once on one producer run (its schedule, its
counts), each with its own members and crash plan. Each row names the workload
and order and counts handled records, re-handled ones (the at-least-once
cost) and anomalies: unseen (acknowledged, never handled),
at-least-once-violation (a committed offset passed a record not handled yet),
reordered-within-key (KeyOrder, PartitionOrder), inconsistent-offsets (a
handler saw a record the log does not hold there: read above the high
watermark), nonmonotonic-poll and poll-skip (a member's polls of a partition
went back, or jumped over a record, within one generation of the group: a
rebalance lets a member start again from the committed offset) and
unexplained-rehandle (a member handed a record again after a commit covered
it). Any anomaly fails the run. In --json each anomaly carries its name as "kind"
and, as the first queue workload wrote it, "anomaly".

--workload copier runs the copier workload (the shape of Kafka's
transactions system test): the producer run fills an input topic while
--consumers copiers in one group, built with consume.NewExactlyOnce, copy it
to an output topic (TOPIC-out); --crashes times a copier crashes (its
connections cut: no commit, no transaction end, no leave) and restarts with
the same transactional id. A read_committed reader reads the output while it
is written and to its end, a second reads it all again, and the output's log
is read with its transaction markers. Each row counts the input's
acknowledged records, the distinct ones copied, and the duplicated, lost and
reordered copies, aborted-reads (G1a: a read_committed reader returned a
record of an aborted transaction) and intermediate-reads (G1b: part of a
committed transaction, or a record of one that never ended). --copier-mode
at-least-once (or all) runs copiers built with consume.New and a NoLoss
producer instead: under the same seeds they copy the records in flight at a
crash twice, and the checker fails them. --copier-seed seeds the crash plan
(schedule i uses seed+i, the same in every mode); the input's preset is NoLoss unless --preset says.

--acked-out FILE writes one line per acknowledged record, tab-separated:
TOPIC PARTITION OFFSET VALUE (offset -1 when acks=0), so that any other
reader can check the topics.

Progress goes to stderr: a status line per second (seed, stage, acked so
far, faults in force), rewritten in place on a terminal.

Exit status: 0 when NoLoss and StrictOrder lost, duplicated and reordered
nothing, no run showed inconsistent-offsets, nonmonotonic-poll or poll-skip,
and LeaderAck showed its loss under pause-followers-then-kill-leader; 1
otherwise, or when a run could not be carried out; 2 for bad usage.`

// verifyRun is one cell of the matrix and what became of it.
type verifyRun struct {
	Preset produce.Preset `json:"preset"`
	Fault  verify.Fault   `json:"fault"`
	// Seed is the random schedule's seed (--schedules).
	Seed *int64 `json:"seed,omitempty"`
	// Workload is "producer", "queue" or "copier".
	Workload verify.WorkloadKind `json:"workload"`
	Result   *verify.Result      `json:"result,omitempty"`
	// Queue is the consumers' side of a queue run.
	Queue *queueCell `json:"queue,omitempty"`
	// Copier is the copiers' side of a copier run.
	Copier *copierCell `json:"copier,omitempty"`
	// Skipped says why the run was not attempted (n/a).
	Skipped string `json:"skipped,omitempty"`
	// Error says why the run could not be carried out.
	Error   string `json:"error,omitempty"`
	Verdict string `json:"verdict"`
	// Failure is the broken promise, if any.
	Failure string `json:"failure,omitempty"`
	// Replay is the command that runs a failing random schedule again.
	Replay string `json:"replay,omitempty"`
}

// newVerifyCmd is "kafkaguard verify".
func newVerifyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "verify [--bootstrap LIST [--control URL | --fault-exec CMD [--restart-exec CMD] [--pause-exec CMD --resume-exec CMD]]] [flags]",
		Short: "Prove the producer presets' promises: produce under broker faults, read back, count",
		Long:  verifyLong + securityHelp,
		Example: `  kafkaguard verify
  kafkaguard verify --client sarama --preset NoLoss --fault kill-leader --json
  kafkaguard verify --fault power-loss-all-replicas --topic-config flush.messages=1
  kafkaguard verify --preset NoLoss,LeaderAck --fault pause-followers-then-kill-leader --report verify-report
  kafkaguard verify --schedules 20 --seed 1
  kafkaguard verify --workload queue --preset NoLoss --fault kill-leader,isolate-leader
  kafkaguard verify --bootstrap 127.0.0.1:9092 --control http://127.0.0.1:9990
  kafkaguard verify --bootstrap kafka-1:9092 --fault-exec 'docker kill kafka-{broker}' --restart-exec 'docker start kafka-{broker}'
  kafkaguard verify --bootstrap 127.0.0.1:24092 --schedules 5 --fault-exec 'kafka.sh kill {broker}' --restart-exec 'kafka.sh restart {broker} --no-wait' --pause-exec 'kafka.sh pause {broker}' --resume-exec 'kafka.sh resume {broker}'`,
		Args: noArgs,
	}
	fs := cmd.Flags()
	bootstrap := fs.String("bootstrap", "", "comma-separated host:port list of the cluster to verify (default: start the bundled 3-broker cluster)")
	control := fs.String("control", "", "fault-control API of a bundled cluster, e.g. http://127.0.0.1:9644")
	controlTokenFile := fs.String("control-token-file", "", "send the token in FILE to the --control API as Authorization: Bearer (else $"+envControlToken+")")
	faultExec := fs.String("fault-exec", "", "shell command that kills broker {broker}")
	restartExec := fs.String("restart-exec", "", "shell command that restarts broker {broker}")
	pauseExec := fs.String("pause-exec", "", "shell command that freezes broker {broker}'s process (SIGSTOP)")
	resumeExec := fs.String("resume-exec", "", "shell command that thaws broker {broker}'s process (SIGCONT)")
	isolateExec := fs.String("isolate-exec", "", "shell command that cuts broker {broker} off from the other brokers and the controller")
	healExec := fs.String("heal-exec", "", "shell command that reconnects broker {broker}")
	pauseReplExec := fs.String("pause-replication-exec", "", "shell command that stops broker {broker}'s replica fetchers")
	resumeReplExec := fs.String("resume-replication-exec", "", "shell command that starts broker {broker}'s replica fetchers again")
	clientName := fs.String("client", string(verify.ClientFranzGo), "producer under test: franz-go or sarama")
	presetList := fs.String("preset", "NoLoss,StrictOrder,LeaderAck,AtMostOnce", "comma-separated presets to run")
	faultList := fs.String("fault", "all", "comma-separated fault schedules to run, or all")
	records := intFlag(fs, "records", verify.DefaultRecords, atLeast(1), "records per run")
	keys := intFlag(fs, "keys", verify.DefaultKeys, atLeast(1), "keys the records are spread over, at most --records")
	partitions := intFlag(fs, "partitions", verify.DefaultPartitions, between(1, 1000), "partitions of each run's topic")
	rate := intFlag(fs, "rate", verify.DefaultRate, atLeast(1), "records produced per second")
	ackedOut := fs.String("acked-out", "", "write the acknowledged records of every run to FILE")
	asJSON := fs.Bool("json", false, "print the results as JSON instead of a table")
	reportDir := fs.String("report", "", "write an HTML report of the runs to DIR/index.html (DIR is created)")
	verbose := fs.BoolP("verbose", "v", false, "log every fault step to stderr (--v is accepted too)")
	topicConfigList := fs.String("topic-config", "", "comma-separated NAME=VALUE configs for each run's topic, e.g. flush.messages=1")
	schedules := intFlag(fs, "schedules", 0, atLeast(0), "run N seeded random fault schedules instead of --fault")
	seed := fs.Int64("seed", 0, "first seed of --schedules (default: from the clock, printed)")
	workloadName := fs.String("workload", string(verify.WorkloadProducer), "producer, queue (consumers of package consume handle the topic, crashing at random) or copier (exactly-once copiers copy it to another topic, crashing at random)")
	orderList := fs.String("order", "all", "queue workload: comma-separated order modes of the consumers (KeyOrder, PartitionOrder, Unordered), or all")
	consumers := intFlag(fs, "consumers", verify.DefaultConsumers, between(1, 100), "queue workload: consumers in the group")
	crashes := intFlag(fs, "crashes", verify.DefaultCrashes, atLeast(0), "queue workload: consumer crashes per run")
	queueSeed := fs.Uint64("queue-seed", 1, "queue workload: seed of the first run's crash plan (run i uses seed+i)")
	copierModeList := fs.String("copier-mode", string(verify.CopierExactlyOnce), "copier workload: comma-separated copier modes (exactly-once, at-least-once), or all")
	copierSeed := fs.Uint64("copier-seed", 1, "copier workload: seed of the first schedule's crash plan (schedule i uses seed+i, in every --copier-mode)")
	sec := addSecurityFlags(fs)
	// Go's flag package spelled the verbose flag --v (and -v); keep accepting --v.
	fs.SetNormalizeFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		if name == "v" {
			name = "verbose"
		}
		return pflag.NormalizedName(name)
	})
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, stdout, stderr := cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr()
		client, err := verify.ParseClient(*clientName)
		if err != nil {
			return usageErrorf("--client: %w", err)
		}
		presets, err := parsePresets(*presetList)
		if err != nil {
			return usageErrorf("--preset: %w", err)
		}
		faults, err := parseFaults(*faultList)
		if err != nil {
			return usageErrorf("--fault: %w", err)
		}
		// Schedules named with --fault must run; under "all" a schedule the
		// fault source cannot carry out is only shown as n/a.
		explicitFaults := fs.Changed("fault") && !strings.EqualFold(strings.TrimSpace(*faultList), "all")
		random := *schedules > 0
		switch {
		case random && fs.Changed("fault"):
			return usageErrorf("use either --fault or --schedules, not both")
		case fs.Changed("seed") && !random:
			return usageErrorf("--seed needs --schedules")
		case random && !fs.Changed("preset"):
			presets = []produce.Preset{produce.NoLoss, produce.StrictOrder}
		}
		if random && !fs.Changed("seed") {
			*seed = time.Now().UnixNano() % 1_000_000_000
		}
		topicConfigs, err := parseTopicConfigs(*topicConfigList)
		if err != nil {
			return usageErrorf("--topic-config: %w", err)
		}
		workload, err := verify.ParseWorkloadKind(*workloadName)
		if err != nil {
			return usageErrorf("--workload: %w", err)
		}
		orders, err := parseOrders(*orderList)
		if err != nil {
			return usageErrorf("--order: %w", err)
		}
		if workload == verify.WorkloadCopier && !fs.Changed("preset") {
			presets = []produce.Preset{produce.NoLoss} // the input's producer
		}
		if workload != verify.WorkloadQueue {
			for _, f := range []string{"order", "queue-seed"} {
				if cmd.Flags().Changed(f) {
					return usageErrorf("--%s needs --workload queue", f)
				}
			}
		}
		if workload == verify.WorkloadProducer {
			for _, f := range []string{"consumers", "crashes"} {
				if cmd.Flags().Changed(f) {
					return usageErrorf("--%s needs --workload queue or copier", f)
				}
			}
		}
		if workload != verify.WorkloadCopier {
			for _, f := range []string{"copier-mode", "copier-seed"} {
				if cmd.Flags().Changed(f) {
					return usageErrorf("--%s needs --workload copier", f)
				}
			}
		}
		copierModes, err := parseCopierModes(*copierModeList)
		if err != nil {
			return usageErrorf("--copier-mode: %w", err)
		}
		if *keys > *records {
			return usageErrorf("--keys (%d) must not exceed --records (%d)", *keys, *records)
		}
		brokers := splitList(*bootstrap)
		if *bootstrap != "" && len(brokers) == 0 {
			return usageErrorf("--bootstrap lists no brokers")
		}
		execs := &verify.ExecFaults{Bootstrap: brokers, KillCmd: *faultExec, RestartCmd: *restartExec,
			PauseCmd: *pauseExec, ResumeCmd: *resumeExec, IsolateCmd: *isolateExec, HealCmd: *healExec,
			PauseReplicationCmd: *pauseReplExec, ResumeReplicationCmd: *resumeReplExec}
		anyExec := len(verify.SupportedOps(execs)) > 0
		if len(brokers) == 0 && (*control != "" || anyExec) {
			return usageErrorf("--control, --fault-exec and the other --*-exec commands need --bootstrap")
		}
		if len(brokers) == 0 && sec.changed() {
			return usageErrorf("--command-config, --security-protocol, --sasl-* and --tls-* need --bootstrap (the bundled cluster is not secured)")
		}
		var clientOpts []kgo.Opt
		var saramaCfg *sarama.Config
		if sec.changed() {
			s, err := sec.settings()
			if err != nil {
				return err
			}
			if clientOpts, err = s.KgoOpts(); err != nil {
				return usageErrorf("%w", err)
			}
			saramaCfg = verify.SaramaBaseConfig()
			if err := s.ApplySarama(saramaCfg); err != nil {
				return usageErrorf("%w", err)
			}
		}
		controlTok, err := controlToken(*controlTokenFile)
		if err != nil {
			return err
		}
		if *controlTokenFile != "" && *control == "" {
			return usageErrorf("--control-token-file needs --control")
		}
		if *control != "" && anyExec {
			return usageErrorf("use either --control or --fault-exec (and the other --*-exec commands), not both")
		}
		if *restartExec != "" && *faultExec == "" {
			return usageErrorf("--restart-exec needs --fault-exec")
		}
		for _, pair := range [][2]string{{"pause-exec", "resume-exec"}, {"isolate-exec", "heal-exec"},
			{"pause-replication-exec", "resume-replication-exec"}} {
			if (fs.Lookup(pair[0]).Value.String() == "") != (fs.Lookup(pair[1]).Value.String() == "") {
				return usageErrorf("--%s and --%s go together: a fault is only carried out with its repair", pair[0], pair[1])
			}
		}
		if cmd.Flags().Changed("report") {
			if *reportDir == "" {
				return usageErrorf("--report needs a directory")
			}
			if err := checkReportDir(*reportDir); err != nil {
				return usageErrorf("--report %s: cannot write a report there: %w", *reportDir, err)
			}
		}
		if random && len(brokers) > 0 && *control == "" && !anyExec {
			return usageErrorf("--schedules needs a fault source: the bundled cluster (no --bootstrap), --control or --fault-exec")
		}

		var logger *slog.Logger
		if *verbose {
			logger = slog.New(slog.NewTextHandler(stderr, nil))
		}
		// A crashed member's partitions wait for its session to time out:
		// the bundled cluster accepts a short one, Kafka 6 s at least.
		sessionTimeout := verify.DefaultSessionTimeout
		if len(brokers) == 0 {
			sessionTimeout = 500 * time.Millisecond
		}
		var injector verify.FaultInjector
		switch {
		case len(brokers) == 0:
			fmt.Fprintln(stderr, "kafkaguard verify: starting the bundled 3-broker cluster")
			opts := []kafkatest.Opt{kafkatest.Brokers(3)}
			if logger != nil {
				opts = append(opts, kafkatest.Logger(logger.With("component", "cluster")))
			}
			c, err := kafkatest.Start(ctx, opts...)
			if err != nil {
				return failure(fmt.Errorf("starting the bundled cluster: %w", err))
			}
			defer c.Close()
			brokers, injector = c.Bootstrap(), verify.ClusterFaults(c)
		case *control != "":
			var hc *http.Client
			if controlTok != "" {
				hc = verify.ControlClient(controlTok)
			}
			injector = verify.ControlFaults(*control, hc)
		case anyExec:
			execs.ClientOpts = clientOpts
			defer execs.Close()
			injector = execs
		}

		var cells []verifyRun
		if random {
			fmt.Fprintf(stderr, "kafkaguard verify: %d random schedules, seeds %d to %d\n", *schedules, *seed, *seed+int64(*schedules)-1)
			for i := range int64(*schedules) {
				for _, p := range presets {
					sd := *seed + i
					cells = append(cells, verifyRun{Preset: p, Fault: verify.FaultRandom, Seed: &sd, Workload: workload})
				}
			}
		} else {
			for _, p := range presets {
				for _, f := range faults {
					cells = append(cells, verifyRun{Preset: p, Fault: f, Workload: workload})
				}
			}
		}
		if workload == verify.WorkloadQueue {
			// Each producer run becomes one run per order mode of the consumers.
			var queued []verifyRun
			for _, c := range cells {
				for _, o := range orders {
					q := c
					q.Queue = &queueCell{Order: o.String(), Seed: *queueSeed + uint64(len(queued))}
					queued = append(queued, q)
				}
			}
			cells = queued
		}
		if workload == verify.WorkloadCopier {
			// Each producer run becomes one run per copier mode, each with
			// its own producer run under the same schedule and crash plan.
			var copied []verifyRun
			for i, c := range cells {
				for _, m := range copierModes {
					k := c
					k.Copier = &copierCell{Mode: m, Seed: *copierSeed + uint64(i)}
					copied = append(copied, k)
				}
			}
			cells = copied
		}

		prog := newProgressLine(stderr)
		start := time.Now()
		// A batch is one producer run: one cell, or under --workload queue
		// one cell per order mode, each a consumer group of the same run.
		for i := 0; i < len(cells); {
			n := 1
			for cells[i].Queue != nil && i+n < len(cells) && sameProducerRun(cells[i], cells[i+n]) {
				n++
			}
			batch, first := cells[i:i+n], i
			i += n
			cell := &batch[0]
			cellLabel := func(j int) string { return runLabel(first+j, len(cells), batch[j]) }
			label := cellLabel(0)
			if n > 1 {
				orders := make([]string, n)
				for j, c := range batch {
					orders[j] = c.Queue.Order
				}
				label = fmt.Sprintf("%s (with %s: one producer run)", label, strings.Join(orders[1:], ", "))
			}
			var cellSeed int64
			if cell.Seed != nil {
				cellSeed = *cell.Seed
			}
			if cell.Fault != verify.FaultRandom && !verify.Supports(injector, cell.Fault) {
				missing := verify.MissingOps(injector, cell.Fault)
				for j := range batch {
					c := &batch[j]
					c.Skipped = "needs " + opsText(missing)
					c.Verdict = "n/a: " + c.Skipped
					if explicitFaults {
						c.Error = fmt.Sprintf("cannot be carried out: the fault source lacks %s%s", opsText(missing), faultSourceHint(missing, *control, anyExec))
					}
				}
				for j := range batch {
					if explicitFaults {
						prog.done(cellLabel(j) + ": n/a, " + batch[j].Error)
					} else {
						prog.done(cellLabel(j) + ": n/a")
					}
				}
				continue
			}
			if ctx.Err() != nil {
				for j := range batch {
					batch[j].Error, batch[j].Verdict = ctx.Err().Error(), "not run: interrupted"
				}
				continue
			}
			rcfg := verify.Config{
				Preset: cell.Preset, Client: client, Fault: cell.Fault, Seed: cellSeed,
				Records: *records, Keys: *keys, Partitions: int32(*partitions), Rate: *rate,
				Bootstrap: brokers, Faults: injector, Logger: logger, TopicConfigs: topicConfigs,
				ClientOpts: clientOpts, Sarama: saramaCfg,
				Progress: func(p verify.Progress) { prog.update(label + ": " + p.String()) },
			}
			type outcome struct {
				res     verify.Result
				err     error
				verdict string
				broken  error
			}
			outs := make([]outcome, n)
			if cell.Queue != nil {
				groups := make([]verify.QueueGroup, n)
				for j, c := range batch {
					order, _ := verify.ParseOrder(c.Queue.Order)
					groups[j] = verify.QueueGroup{Order: order, Seed: c.Queue.Seed}
				}
				qress, qerr := verify.RunQueues(ctx, verify.QueueConfig{Config: rcfg,
					Consumers: *consumers, Crashes: crashCount(*crashes), SessionTimeout: sessionTimeout}, groups)
				for j, qres := range qress {
					outs[j] = outcome{qres.Result, qerr, qres.Verdict(), qres.Err()}
					q := batch[j].Queue
					q.Group, q.QueueReport = qres.Group, qres.Queue
					if qres.History != nil {
						q.CrashLog = qres.History.Crashes
					}
				}
			} else if cell.Copier != nil {
				k := cell.Copier
				kres, kerr := verify.RunCopier(ctx, verify.CopierConfig{Config: rcfg, Mode: k.Mode, Seed: k.Seed,
					Copiers: *consumers, Crashes: crashCount(*crashes), SessionTimeout: sessionTimeout})
				outs[0] = outcome{kres.Result, kerr, kres.Verdict(), kres.Err()}
				k.Group, k.Output, k.CopierReport = kres.Group, kres.Output, kres.Copier
				if kres.History != nil {
					k.CrashLog = kres.History.Crashes
				}
			} else {
				res, err := verify.Run(ctx, rcfg)
				outs[0] = outcome{res, err, res.Verdict(), res.Err()}
			}
			for j := range batch {
				c, o := &batch[j], outs[j]
				if o.err != nil {
					c.Error, c.Verdict = o.err.Error(), "ERROR"
					if c.Seed != nil {
						c.Replay = replayCommand(fs, *c.Seed, c.Preset, c.Queue) + copierReplay(c.Copier)
					}
					prog.done(cellLabel(j) + ": error: " + o.err.Error())
					continue
				}
				c.Result = &o.res
				c.Verdict = o.verdict
				if o.broken != nil {
					c.Failure = o.broken.Error()
					if c.Seed != nil {
						c.Replay = replayCommand(fs, *c.Seed, c.Preset, c.Queue) + copierReplay(c.Copier)
					}
				}
				prog.done(fmt.Sprintf("%s: %s (%v)", cellLabel(j), c.Verdict, o.res.Duration.Round(100*time.Millisecond)))
			}
		}
		elapsed := time.Since(start)

		code := 0
		for _, c := range cells {
			if c.Error != "" || c.Failure != "" {
				code = 1
			}
		}
		if *ackedOut != "" {
			if err := writeAcked(*ackedOut, cells); err != nil {
				fmt.Fprintf(stderr, "kafkaguard verify: --acked-out: %v\n", err)
				code = 1
			}
		}
		if *reportDir != "" {
			page := reportPage(commandLine(cmd), client, cells, time.Now())
			if path, err := report.WriteDir(*reportDir, page); err != nil {
				fmt.Fprintf(stderr, "kafkaguard verify: --report: %v\n", err)
				code = 1
			} else {
				fmt.Fprintf(stderr, "kafkaguard verify: report written to %s\n", path)
			}
		}
		var werr error
		switch {
		case *asJSON:
			var first *int64
			if random {
				first = seed
			}
			werr = writeVerifyJSON(stdout, client, cells, code == 0, first, elapsed)
		case workload == verify.WorkloadQueue:
			werr = writeQueueTable(stdout, client, cells, elapsed)
		case workload == verify.WorkloadCopier:
			werr = writeCopierTable(stdout, client, cells, elapsed)
		case random:
			werr = writeScheduleTable(stdout, client, cells, *seed, elapsed)
		default:
			werr = writeVerifyTable(stdout, client, cells, elapsed)
		}
		if werr != nil {
			return failure(fmt.Errorf("writing output: %w", werr))
		}
		return exitCode(code)
	}
	return cmd
}

func parsePresets(list string) ([]produce.Preset, error) {
	var out []produce.Preset
	for _, name := range splitList(list) {
		p, err := produce.ParsePreset(name)
		if err != nil {
			return nil, err
		}
		if p == produce.ExactlyOnce {
			return nil, fmt.Errorf("%s: %w", p, verify.ErrTransactionalPreset)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, errors.New("no preset given")
	}
	return out, nil
}

// parseTopicConfigs parses "name=value,name=value"; "" is none.
func parseTopicConfigs(list string) (map[string]string, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range strings.Split(list, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not NAME=VALUE", kv)
		}
		out[k] = v
	}
	return out, nil
}

func parseFaults(list string) ([]verify.Fault, error) {
	if strings.EqualFold(strings.TrimSpace(list), "all") {
		return verify.Faults(), nil
	}
	var out []verify.Fault
	for _, name := range splitList(list) {
		f, err := verify.ParseFault(name)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	if len(out) == 0 {
		return nil, errors.New("no fault schedule given")
	}
	return out, nil
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func opsText(ops []verify.Op) string {
	s := make([]string, len(ops))
	for i, op := range ops {
		s[i] = string(op)
	}
	return strings.Join(s, "+")
}

// writeVerifyTable prints one row per run, then the broken promises.
func writeVerifyTable(w io.Writer, client verify.Client, cells []verifyRun, elapsed time.Duration) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "client %s, %s in %v\n\n", client, runsText(len(cells)), elapsed.Round(time.Second))
	tw := tabwriter.NewWriter(bw, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PRESET\tFAULT\tACKED\tLOST\tDUPLICATED\tREORDERED\tUNACKED-PRESENT\tVERDICT")
	for _, c := range cells {
		if c.Result == nil {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t%s\n", c.Preset, c.Fault, c.Verdict)
			continue
		}
		r := c.Result.Report
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", c.Preset, c.Fault,
			r.Acked, r.Lost, r.Duplicated, r.Reordered, r.UnackedPresent, c.Verdict)
	}
	if err := writeRunsFooter(bw, tw, cells); err != nil {
		return err
	}
	var problems []string
	for _, c := range cells {
		switch {
		case c.Error != "":
			problems = append(problems, fmt.Sprintf("%s %s: %s", c.Preset, c.Fault, c.Error))
		case c.Failure != "":
			problems = append(problems, c.Failure)
		}
	}
	if len(problems) == 0 {
		fmt.Fprintln(bw, "\nevery run kept its preset's promise")
	} else {
		fmt.Fprintf(bw, "\n%d runs broke their preset's promise or could not run:\n", len(problems))
		for _, p := range problems {
			fmt.Fprintf(bw, "- %s\n", strings.ReplaceAll(p, "\n", "; "))
		}
	}
	return bw.Flush()
}

// verifySummary sums the runs up per preset: the totals of each violation,
// and for the presets that may lose records, where they lost them.
func verifySummary(cells []verifyRun) []string {
	var order []produce.Preset
	byPreset := map[produce.Preset][]verifyRun{}
	for _, c := range cells {
		if c.Result == nil {
			continue
		}
		if _, ok := byPreset[c.Preset]; !ok {
			order = append(order, c.Preset)
		}
		byPreset[c.Preset] = append(byPreset[c.Preset], c)
	}
	var lines []string
	for _, p := range order {
		runs := byPreset[p]
		var lost, dup, reord int
		var where []string
		for _, c := range runs {
			r := c.Result.Report
			lost, dup, reord = lost+r.Lost, dup+r.Duplicated, reord+r.Reordered+r.SplitKeys
			if r.Lost > 0 {
				where = append(where, fmt.Sprintf("%d under %s", r.Lost, c.Fault))
			}
		}
		n := runsText(len(runs))
		line := fmt.Sprintf("%s: %d lost, %d duplicated, %d reordered in %s", p, lost, dup, reord, n)
		if (p == produce.LeaderAck || p == produce.AtMostOnce) && len(where) > 0 {
			line = fmt.Sprintf("%s: lost acknowledged records (%s), %d duplicated, %d reordered in %s",
				p, strings.Join(where, ", "), dup, reord, n)
		}
		lines = append(lines, line)
	}
	return lines
}

func runsText(n int) string {
	if n == 1 {
		return "1 run"
	}
	return strconv.Itoa(n) + " runs"
}

// writeVerifyJSON prints the runs as JSON; seed is the first seed of
// --schedules (nil without).
func writeVerifyJSON(w io.Writer, client verify.Client, cells []verifyRun, passed bool, seed *int64, elapsed time.Duration) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Client    verify.Client `json:"client"`
		Passed    bool          `json:"passed"`
		Seed      *int64        `json:"seed,omitempty"`
		ElapsedNS time.Duration `json:"elapsed_ns"`
		Runs      []verifyRun   `json:"runs"`
	}{client, passed, seed, elapsed, cells})
}

// execFlag names the flag whose command carries out op; "" if none does.
func execFlag(op verify.Op) string {
	switch op {
	case verify.OpKill:
		return "--fault-exec"
	case verify.OpRestart, verify.OpPause, verify.OpResume, verify.OpIsolate, verify.OpHeal,
		verify.OpPauseReplication, verify.OpResumeReplication:
		return "--" + string(op) + "-exec"
	}
	return ""
}

// faultSourceHint says which flags give the missing operations.
func faultSourceHint(missing []verify.Op, control string, anyExec bool) string {
	switch {
	case control != "":
		return ""
	case !anyExec:
		return " (give --control or --fault-exec)"
	}
	var flags, none []string
	for _, op := range missing {
		if f := execFlag(op); f != "" {
			flags = append(flags, f)
		} else {
			none = append(none, string(op))
		}
	}
	if len(none) > 0 {
		return fmt.Sprintf(" (no --*-exec command carries out %s; use --control with a bundled cluster)", strings.Join(none, "+"))
	}
	return " (give " + strings.Join(flags, " and ") + ")"
}

// replayCommand is the command line that runs one random schedule again:
// the flags given, with --seed, --schedules 1 and --preset for the run, and
// for a queue run its --order and crash plan's --queue-seed.
func replayCommand(fs *pflag.FlagSet, seed int64, p produce.Preset, q *queueCell) string {
	args := []string{"kafkaguard", "verify"}
	fs.Visit(func(f *pflag.Flag) {
		switch f.Name {
		case "seed", "schedules", "preset", "json", "acked-out", "verbose":
			return
		case "order", "queue-seed":
			if q != nil {
				return
			}
		case "copier-mode", "copier-seed":
			if fs.Lookup("workload").Value.String() == string(verify.WorkloadCopier) {
				return // copierReplay names the run's
			}
		}
		args = append(args, "--"+f.Name, shellQuote(f.Value.String()))
	})
	args = append(args, "--preset", p.String(), "--seed", strconv.FormatInt(seed, 10), "--schedules", "1")
	if q != nil {
		args = append(args, "--order", q.Order, "--queue-seed", strconv.FormatUint(q.Seed, 10))
	}
	return strings.Join(args, " ")
}

// copierReplay is what a copier run's replay command adds: its mode and
// crash plan's --copier-seed ("" for another run).
func copierReplay(k *copierCell) string {
	if k == nil {
		return ""
	}
	return fmt.Sprintf(" --copier-mode %s --copier-seed %d", k.Mode, k.Seed)
}

// writeScheduleTable prints one row per random schedule and preset, then
// the anomalies with their examples and how to replay each failing run.
func writeScheduleTable(w io.Writer, client verify.Client, cells []verifyRun, seed int64, elapsed time.Duration) error {
	bw := bufio.NewWriter(w)
	seeds := map[int64]bool{}
	for _, c := range cells {
		seeds[*c.Seed] = true
	}
	fmt.Fprintf(bw, "client %s, %d random schedules (seeds %d to %d), %s in %v\n\n", client, len(seeds), seed,
		seed+int64(len(seeds))-1, runsText(len(cells)), elapsed.Round(time.Second))
	tw := tabwriter.NewWriter(bw, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEED\tPRESET\tFAULTS\tACKED\tLOST\tDUPLICATED\tREORDERED\tUNACKED-PRESENT\tANOMALIES\tVERDICT")
	for _, c := range cells {
		if c.Result == nil {
			fmt.Fprintf(tw, "%d\t%s\t-\t-\t-\t-\t-\t-\t-\t%s\n", *c.Seed, c.Preset, c.Verdict)
			continue
		}
		r := c.Result.Report
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", *c.Seed, c.Preset, scheduleKinds(c.Result.Schedule),
			r.Acked, r.Lost, r.Duplicated, r.Reordered, r.UnackedPresent, anomalyCounts(c.Result.Anomalies), c.Verdict)
	}
	if err := writeRunsFooter(bw, tw, cells); err != nil {
		return err
	}
	if note := dangerMissed(cells); note != "" {
		fmt.Fprintln(bw, "\n"+note)
	}
	var failing []verifyRun
	for _, c := range cells {
		if c.Error != "" || c.Failure != "" {
			failing = append(failing, c)
		}
	}
	if len(failing) == 0 {
		fmt.Fprintln(bw, "\nevery run kept its preset's promise")
	} else {
		fmt.Fprintf(bw, "\n%d runs broke their preset's promise or could not run:\n", len(failing))
		for _, c := range failing {
			msg := c.Failure
			if c.Error != "" {
				msg = c.Error
			}
			fmt.Fprintf(bw, "- seed %d %s: %s\n  replay: %s\n", *c.Seed, c.Preset, strings.ReplaceAll(msg, "\n", "; "), c.Replay)
		}
	}
	return bw.Flush()
}

// writeRunsFooter ends a table of runs: it flushes the rows, then sums the
// runs up per preset and lists their anomalies.
func writeRunsFooter(w io.Writer, tw *tabwriter.Writer, cells []verifyRun) error {
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, line := range verifySummary(cells) {
		fmt.Fprintln(w, line)
	}
	writeAnomalies(w, cells)
	return nil
}

// dangerMissed says when LeaderAck or AtMostOnce ran under the random
// schedules and lost nothing under any of them: the schedules did not reach
// the danger those presets allow, so the clean runs of the safe presets
// prove less. It returns "" otherwise.
func dangerMissed(cells []verifyRun) string {
	ran := map[produce.Preset]int{}
	lost := map[produce.Preset]bool{}
	for _, c := range cells {
		if c.Result == nil || c.Preset != produce.LeaderAck && c.Preset != produce.AtMostOnce {
			continue
		}
		ran[c.Preset]++
		lost[c.Preset] = lost[c.Preset] || c.Result.Report.Lost > 0
	}
	var missed []string
	for _, p := range []produce.Preset{produce.LeaderAck, produce.AtMostOnce} {
		if ran[p] > 0 && !lost[p] {
			missed = append(missed, fmt.Sprintf("%s lost nothing in %s", p, runsText(ran[p])))
		}
	}
	if len(missed) == 0 {
		return ""
	}
	return "note: " + strings.Join(missed, ", ") + ": these schedules did not reach the danger it allows"
}

// scheduleKinds sums a random schedule up as its windows' kinds, such as
// "kill,latency", or "none".
func scheduleKinds(s *verify.Schedule) string {
	if s == nil || len(s.Windows) == 0 {
		return "none"
	}
	kinds := make([]string, len(s.Windows))
	for i, w := range s.Windows {
		kinds[i] = string(w.Kind)
	}
	return strings.Join(kinds, ",")
}

// anomalyCounts sums anomalies up in one word, such as
// "lost-write=3,duplicate=1", or "-".
func anomalyCounts(as verify.Anomalies) string {
	var parts []string
	for _, a := range as {
		if a.Kind != verify.Indeterminate {
			parts = append(parts, fmt.Sprintf("%s=%d", a.Kind, a.Count))
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ",")
}

// writeAnomalies lists each run's anomalies with their examples.
func writeAnomalies(w io.Writer, cells []verifyRun) {
	header := false
	for _, c := range cells {
		if c.Result == nil || anomalyCounts(c.Result.Anomalies) == "-" {
			continue
		}
		if !header {
			fmt.Fprintln(w, "\nanomalies (up to 5 examples each):")
			header = true
		}
		name := fmt.Sprintf("%s %s", c.Preset, c.Fault)
		if c.Seed != nil {
			name = fmt.Sprintf("seed %d %s", *c.Seed, c.Preset)
		}
		for _, a := range c.Result.Anomalies {
			if a.Kind == verify.Indeterminate {
				continue
			}
			fmt.Fprintf(w, "- %s: %s %d\n", name, a.Kind, a.Count)
			for _, e := range a.Examples {
				fmt.Fprintf(w, "    %s\n", e)
			}
		}
	}
}

// runLabel names cell i of n in progress lines, such as
// "[3/12] seed 7 NoLoss queue Unordered".
func runLabel(i, n int, c verifyRun) string {
	label := fmt.Sprintf("[%d/%d] %s %s", i+1, n, c.Preset, c.Fault)
	if c.Seed != nil {
		label = fmt.Sprintf("[%d/%d] seed %d %s", i+1, n, *c.Seed, c.Preset)
	}
	if c.Queue != nil {
		label += " queue " + c.Queue.Order
	}
	if c.Copier != nil {
		label += " copier " + string(c.Copier.Mode)
	}
	return label
}

// sameProducerRun reports whether two queue cells are consumer groups of one
// producer run: the same preset, fault schedule and seed.
func sameProducerRun(a, b verifyRun) bool {
	return a.Queue != nil && b.Queue != nil && a.Preset == b.Preset && a.Fault == b.Fault &&
		(a.Seed == nil) == (b.Seed == nil) && (a.Seed == nil || *a.Seed == *b.Seed)
}

// writeAcked writes every run's acknowledged records to path, each topic
// once (the consumer groups of a queue run share their producer run).
func writeAcked(path string, cells []verifyRun) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(f)
	written := map[string]bool{}
	for _, c := range cells {
		if c.Result == nil || written[c.Result.Topic] {
			continue
		}
		written[c.Result.Topic] = true
		for _, a := range c.Result.Acked {
			bw.WriteString(c.Result.Topic)
			bw.WriteByte('\t')
			bw.WriteString(strconv.Itoa(int(a.Partition)))
			bw.WriteByte('\t')
			bw.WriteString(strconv.FormatInt(a.Offset, 10))
			bw.WriteByte('\t')
			bw.WriteString(a.Value.String())
			bw.WriteByte('\n')
		}
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// progressLine shows progress on stderr: a status line at most once per
// second, rewritten in place on a terminal and printed as a plain line
// otherwise, and a line per finished run.
type progressLine struct {
	w     io.Writer
	tty   bool
	every time.Duration
	last  time.Time
}

func newProgressLine(w io.Writer) *progressLine {
	p := &progressLine{w: w, every: time.Second}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

// update shows s as the current status, unless a status went out less than
// a second ago.
func (p *progressLine) update(s string) {
	now := time.Now()
	if now.Sub(p.last) < p.every {
		return
	}
	p.last = now
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", s)
		return
	}
	fmt.Fprintln(p.w, s)
}

// step shows s as what is running now: in place on a terminal, otherwise as a line.
func (p *progressLine) step(s string) {
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", s)
		return
	}
	fmt.Fprintln(p.w, s)
}

// clear erases the line on a terminal.
func (p *progressLine) clear() {
	if p.tty {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

func (p *progressLine) done(s string) {
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s\n", s)
		return
	}
	fmt.Fprintln(p.w, s)
}
