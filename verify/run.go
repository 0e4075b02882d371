package verify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/produce"
)

// Client names the client library whose producer is under test.
type Client string

// The client libraries Run can drive.
const (
	// ClientFranzGo produces with a [produce.Producer] over franz-go.
	ClientFranzGo Client = "franz-go"
	// ClientSarama produces with sarama's AsyncProducer configured by
	// [produce.ApplySarama].
	ClientSarama Client = "sarama"
)

// ErrUnknownClient is returned for a client name other than "franz-go" and
// "sarama".
var ErrUnknownClient = errors.New("verify: unknown client")

// ParseClient returns the client with the given name, "franz-go" or
// "sarama". Case is ignored.
func ParseClient(name string) (Client, error) {
	return parseNamed(name, []Client{ClientFranzGo, ClientSarama}, func(c Client) string { return string(c) }, ErrUnknownClient)
}

// Defaults of [Config].
const (
	DefaultRecords           = 2000
	DefaultKeys              = 10
	DefaultPartitions        = 2
	DefaultReplicationFactor = 3
	DefaultRate              = 1000 // records per second
)

// Config describes one run. Bootstrap is required, and Faults for every
// schedule but FaultNone; everything else has a default.
type Config struct {
	Preset produce.Preset // Preset configures the producer under test (default NoLoss).
	Client Client         // Client picks the producer's library (default ClientFranzGo).

	Records int // Records is the workload's size (default DefaultRecords).
	Keys    int // Keys is the number of keys the records are spread over (default DefaultKeys).
	// Rate paces the producer in records per second (default DefaultRate),
	// so that the faults hit a stream that is still flowing.
	Rate int

	Fault Fault // Fault is the schedule (default FaultNone).
	// Seed draws the random schedule of FaultRandom ([NewSchedule]) for the
	// cluster's brokers, the topic's partitions and the operations Faults
	// supports; the same seed on the same cluster shape replays it.
	Seed      int64
	Bootstrap []string      // Bootstrap lists the cluster's seed brokers.
	Faults    FaultInjector // Faults carries out the schedule.

	// Topic is created for the run and must not exist; default
	// "kafkaguard-verify-<preset>-<fault>-<time>". It is kept afterwards so
	// that the outcome can be checked again from outside.
	Topic             string
	Partitions        int32 // Partitions of the topic (default DefaultPartitions).
	ReplicationFactor int16 // ReplicationFactor of the topic (default DefaultReplicationFactor).
	// TopicConfigs are extra configs for the topic, such as
	// {"flush.messages": "1"}, over the run's min.insync.replicas=2 and
	// unclean.leader.election.enable=false.
	TopicConfigs map[string]string

	// ClientOpts connect every franz-go client Run makes — the admin
	// client, the read-back consumer and the producer under test — to a
	// secured cluster: TLS and SASL options such as those of
	// clientsec.Settings.KgoOpts. They follow the seed brokers. For
	// ClientSarama, the producer's security goes in Sarama.
	ClientOpts []kgo.Opt
	// KgoOpts are the application's own franz-go options, applied after
	// the seed brokers and Run's tuning and checked against Preset.
	KgoOpts []kgo.Opt
	// Sarama is the application's sarama configuration (default
	// SaramaBaseConfig()); Run applies Preset to a copy.
	Sarama *sarama.Config

	// Progress, if set, is called with the run's progress at every step
	// and every quarter second while records are produced or awaited,
	// from one goroutine at a time.
	Progress func(Progress)
	// Logger receives a line per fault step (default: discarded).
	Logger *slog.Logger
}

// Progress is a snapshot of a run in progress.
type Progress struct {
	Stage   string // Stage says what the run is doing, such as "kill leader 1".
	Records int    // Records is the workload's size.
	Sent    int    // Sent counts records handed to the producer.
	Acked   int    // Acked counts records acknowledged so far.
	Failed  int    // Failed counts records whose send failed.
	Seed    int64  // Seed is Config.Seed under FaultRandom.
	// Faults are the faults in force, such as "kill 1" (see [ActiveFaults]).
	Faults []string
}

// String formats the progress as one line.
func (p Progress) String() string {
	s := fmt.Sprintf("%s: sent %d/%d, acked %d, failed %d", p.Stage, p.Sent, p.Records, p.Acked, p.Failed)
	if len(p.Faults) > 0 {
		s += "; faults: " + strings.Join(p.Faults, ", ")
	}
	return s
}

func (cfg Config) normalize() (Config, error) {
	if cfg.Client == "" {
		cfg.Client = ClientFranzGo
	}
	if cfg.Records == 0 {
		cfg.Records = DefaultRecords
	}
	if cfg.Keys == 0 {
		cfg.Keys = DefaultKeys
	}
	if cfg.Rate == 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.Fault == "" {
		cfg.Fault = FaultNone
	}
	if cfg.Partitions == 0 {
		cfg.Partitions = DefaultPartitions
	}
	if cfg.ReplicationFactor == 0 {
		cfg.ReplicationFactor = DefaultReplicationFactor
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	var errs []error
	if _, err := produce.ParsePreset(cfg.Preset.String()); err != nil {
		errs = append(errs, fmt.Errorf("verify: Preset: %w", err))
	} else if cfg.Preset == produce.ExactlyOnce {
		errs = append(errs, fmt.Errorf("verify: Preset: %s: %w", cfg.Preset, ErrTransactionalPreset))
	}
	if _, err := ParseClient(string(cfg.Client)); err != nil {
		errs = append(errs, fmt.Errorf("verify: Client: %w", err))
	}
	if _, err := ParseFault(string(cfg.Fault)); err != nil && cfg.Fault != FaultRandom {
		errs = append(errs, fmt.Errorf("verify: Fault: %w", err))
	}
	if cfg.Records < 0 {
		errs = append(errs, fmt.Errorf("verify: Records must be positive, got %d", cfg.Records))
	}
	if cfg.Keys < 0 || cfg.Keys > cfg.Records {
		errs = append(errs, fmt.Errorf("verify: Keys must be between 1 and Records (%d), got %d", cfg.Records, cfg.Keys))
	}
	if cfg.Rate < 0 {
		errs = append(errs, fmt.Errorf("verify: Rate must be positive, got %d", cfg.Rate))
	}
	if cfg.Partitions < 0 {
		errs = append(errs, fmt.Errorf("verify: Partitions must be positive, got %d", cfg.Partitions))
	}
	if cfg.ReplicationFactor < 0 {
		errs = append(errs, fmt.Errorf("verify: ReplicationFactor must be positive, got %d", cfg.ReplicationFactor))
	}
	if len(cfg.Bootstrap) == 0 {
		errs = append(errs, errors.New("verify: Bootstrap lists no brokers"))
	}
	if (len(cfg.Fault.Ops()) > 0 || cfg.Fault == FaultRandom) && cfg.Faults == nil {
		errs = append(errs, fmt.Errorf("verify: fault %s needs a FaultInjector", cfg.Fault))
	}
	if err := errors.Join(errs...); err != nil {
		return cfg, err
	}
	if missing := MissingOps(cfg.Faults, cfg.Fault); len(missing) > 0 {
		return cfg, fmt.Errorf("%w: fault %s needs %v", ErrUnsupported, cfg.Fault, missing)
	}
	if cfg.Fault == FaultRandom && len(drawableKinds(Shape{Brokers: []int32{0, 1}, Ops: SupportedOps(cfg.Faults)})) == 0 {
		return cfg, fmt.Errorf("%w: a random schedule needs a fault and its repair (such as kill and restart); the injector offers %v",
			ErrUnsupported, SupportedOps(cfg.Faults))
	}
	if cfg.Topic == "" {
		fault := string(cfg.Fault)
		if cfg.Fault == FaultRandom {
			fault += "-s" + strconv.FormatInt(cfg.Seed, 10)
		}
		cfg.Topic = fmt.Sprintf("kafkaguard-verify-%s-%s-%s", strings.ToLower(cfg.Preset.String()), fault,
			strconv.FormatInt(time.Now().UnixNano(), 36))
	}
	return cfg, nil
}

// clientOpts are the options of a franz-go client of the run: the seed
// brokers, ClientOpts, then more.
func (cfg Config) clientOpts(more ...kgo.Opt) []kgo.Opt {
	opts := append([]kgo.Opt{kgo.SeedBrokers(cfg.Bootstrap...)}, cfg.ClientOpts...)
	return append(opts, more...)
}

// Result is the outcome of one run.
type Result struct {
	Preset produce.Preset `json:"preset"`
	Client Client         `json:"client"`
	Fault  Fault          `json:"fault"`
	Topic  string         `json:"topic"`
	// TopicConfigs are Config.TopicConfigs.
	TopicConfigs map[string]string `json:"topic_configs,omitempty"`

	Sent   int `json:"sent"`   // Sent counts records handed to the producer.
	Failed int `json:"failed"` // Failed counts sends that ended with an error.
	// Corrupt counts records read back that are not workload values.
	Corrupt int `json:"corrupt"`
	// FirstError is the first send error, if any, as text.
	FirstError string `json:"first_error,omitempty"`

	Report Report `json:"report"` // Report judges what was read back.
	// Anomalies name what the checker found ([Analyze]), with examples.
	Anomalies Anomalies `json:"anomalies"`

	// Seed and Schedule are the random schedule's, under FaultRandom.
	Seed     int64     `json:"seed,omitempty"`
	Schedule *Schedule `json:"schedule,omitempty"`
	// FaultEvents are the fault operations carried out, in order.
	FaultEvents []FaultEvent `json:"fault_events,omitempty"`

	// Acked lists the acknowledged records, ordered by key and sequence.
	Acked []Ack `json:"-"`

	// Timeline is what the run did over time: the producer's outcomes and
	// ack latency per interval, the fault steps, and lag.
	Timeline *Timeline `json:"timeline,omitempty"`

	Duration time.Duration `json:"duration_ns"`
}

// ErrFaultMissed is returned by [Result.Err] when LeaderAck lost nothing
// under FaultPauseFollowersKillLeader: that schedule exists to make acks=1
// lose records, and a run where it did not has not exercised the fault.
var ErrFaultMissed = errors.New("verify: LeaderAck lost nothing under " + string(FaultPauseFollowersKillLeader) + ": the fault did not hit acknowledged records")

// ErrTransactionalPreset is returned for the ExactlyOnce preset: the producer
// and queue workloads send each record on its own, outside transactions, so
// they cannot judge a transactional preset.
var ErrTransactionalPreset = errors.New("verify: the producer and queue workloads send outside transactions and cannot judge a transactional preset")

// ErrCorrupt is returned by [Result.Err] when records read back were not
// workload values.
var ErrCorrupt = errors.New("verify: records read back are not workload values")

// keepsEverything reports whether the preset promises no loss, duplicate
// or reorder.
func keepsEverything(p produce.Preset) bool { return p == produce.NoLoss || p == produce.StrictOrder }

// lossAllowed reports whether the run's fault may lose acknowledged records
// whatever the preset: a power loss of every replica of a topic that does not
// fsync every message (flush.messages=1).
func (r Result) lossAllowed() bool {
	return r.Fault == FaultPowerLossAllReplicas && r.TopicConfigs["flush.messages"] != "1"
}

// Err returns nil if the run kept the preset's promise. The anomalies no
// preset allows (inconsistent-offsets, nonmonotonic-poll, poll-skip) fail
// every run ([ErrAnomaly]). NoLoss and
// StrictOrder promise no loss, duplicate or reorder ([Report.Err]), except
// that under FaultPowerLossAllReplicas without flush.messages=1 a loss is
// allowed (acknowledged records that no replica had fsynced); LeaderAck
// must lose under FaultPauseFollowersKillLeader ([ErrFaultMissed]). Corrupt
// records fail every preset ([ErrCorrupt]).
func (r Result) Err() error {
	var errs []error
	if r.Corrupt > 0 {
		errs = append(errs, fmt.Errorf("%w: %d", ErrCorrupt, r.Corrupt))
	}
	for _, k := range neverAllowed {
		if a, ok := r.Anomalies.Get(k); ok {
			errs = append(errs, fmt.Errorf("%w: %s: %d, e.g. %v", ErrAnomaly, k, a.Count, a.Examples[0]))
		}
	}
	if keepsEverything(r.Preset) {
		rep := r.Report
		if r.lossAllowed() {
			rep.Lost = 0
		}
		errs = append(errs, rep.Err())
	}
	if r.Preset == produce.LeaderAck && r.Fault == FaultPauseFollowersKillLeader && r.Report.Lost == 0 {
		errs = append(errs, ErrFaultMissed)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("verify: %s under %s: %w", r.Preset, r.Fault, err)
	}
	return nil
}

// Verdict sums the run up in a few words: "ok", "FAIL" with what broke
// the promise, or "allowed by acks=1" for a violation the preset permits.
// A run whose sends partly failed says how many records were not acked.
func (r Result) Verdict() string {
	if err := r.Err(); err != nil {
		var what []string
		switch {
		case errors.Is(err, ErrFaultMissed):
			what = append(what, "no loss shown")
		case r.Corrupt > 0:
			what = append(what, "corrupt")
		}
		for _, k := range neverAllowed {
			if r.Anomalies.Count(k) > 0 {
				what = append(what, string(k))
			}
		}
		if keepsEverything(r.Preset) {
			if r.Report.Lost > 0 && !r.lossAllowed() {
				what = append(what, "lost")
			}
			if r.Report.Duplicated > 0 {
				what = append(what, "duplicated")
			}
			if r.Report.Reordered > 0 || r.Report.SplitKeys > 0 {
				what = append(what, "reordered")
			}
		}
		return "FAIL: " + strings.Join(what, ", ")
	}
	v := "ok"
	if !r.Report.Clean() {
		switch {
		case r.lossAllowed() && r.Report.Lost > 0 && keepsEverything(r.Preset):
			v = "allowed without fsync (flush.messages)"
		case r.Preset == produce.LeaderAck:
			v = "allowed by acks=1"
		case r.Preset == produce.AtMostOnce:
			v = "allowed by acks=0"
		}
	}
	if r.Failed > 0 {
		v += fmt.Sprintf(" (%d not acked)", r.Failed)
	}
	return v
}

// Timing of Run's waits.
const (
	leaderTimeout  = 30 * time.Second // for a new leader after a fault
	isrTimeout     = 15 * time.Second // for a killed follower to leave the ISR
	healthyTimeout = 60 * time.Second // for every replica to be back in the ISR
	readTimeout    = 60 * time.Second
	restoreTimeout = 2 * time.Minute
	// FaultPauseFollowersKillLeader lets the leader take records alone
	// until it has acknowledged a record the followers cannot have and the
	// producer passed half the workload, for at most maxPauseWindow. That
	// must stay below the replica lag bound (2 s in kafkatest, 10 s for
	// "kafkaguard broker", 30 s in Kafka), or the followers leave the ISR
	// and the leader's death takes the partition offline instead.
	maxPauseWindow = time.Second
	// minSpan is the shortest span of a random schedule.
	minSpan = 2 * time.Second
)

// Run creates the topic, produces the workload with the preset while the
// fault schedule runs, waits until every replica is back in the ISR, reads
// the topic back and judges it with [Check]. It returns an error if the run
// could not be carried out (the cluster is unreachable, a fault step
// failed, the schedule needs an operation the injector lacks: see
// [ErrUnsupported]); what the run found is in the Result (see
// [Result.Err]). Every broker the schedule acted on is put back, even when
// Run fails.
func Run(ctx context.Context, cfg Config) (Result, error) { return run(ctx, cfg, nil) }

// sideWorkload runs beside the producer in one run, such as the queue
// workload's consumers ([RunQueue]).
type sideWorkload interface {
	// start is called once the topic is healthy, before the producer starts.
	start(ctx context.Context, topic string) error
	// finish is called with the records read back, once every send has
	// its outcome and every replica is back in the ISR.
	finish(ctx context.Context, read []Record) error
}

// run is Run with side, if not nil, running beside the producer.
func run(ctx context.Context, cfg Config, side sideWorkload) (Result, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return Result{}, err
	}
	start := time.Now()
	res := Result{Preset: cfg.Preset, Client: cfg.Client, Fault: cfg.Fault, Topic: cfg.Topic, TopicConfigs: cfg.TopicConfigs}
	if cfg.Fault == FaultRandom {
		res.Seed = cfg.Seed
	}

	admCl, err := kgo.NewClient(cfg.clientOpts(kgo.MetadataMinAge(100*time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }))...)
	if err != nil {
		return res, fmt.Errorf("verify: %w", err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)

	t := newTally()
	rec := newRecorder(start, cfg.Records, cfg.Keys)
	t.timeline = rec
	var sent atomic.Int64
	events := newEventLog()
	prog := newProgressor(cfg, &sent, t, events)
	defer prog.stop()

	prog.stage("create topic " + cfg.Topic)
	if err := createTopic(ctx, adm, cfg); err != nil {
		return res, err
	}
	if err := waitHealthy(ctx, adm, cfg.Topic, healthyTimeout); err != nil {
		return res, err
	}
	var nemesis Schedule
	controller := int32(-1)
	if cfg.Fault == FaultRandom {
		if nemesis, controller, err = randomSchedule(ctx, adm, cfg); err != nil {
			return res, err
		}
		res.Schedule = &nemesis
		cfg.Logger.Info("verify: random schedule", "seed", cfg.Seed, "schedule", nemesis.String())
	}

	if side != nil {
		if err := side.start(ctx, cfg.Topic); err != nil {
			return res, err
		}
	}
	snd, err := newSender(ctx, cfg, t)
	if err != nil {
		return res, err
	}
	closed := false
	defer func() {
		if !closed {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			_ = snd.close(cctx)
		}
	}()

	prog.stage("produce")
	stopWatching := rec.watchHighWatermarks(ctx, adm, cfg.Topic)
	defer stopWatching()
	values := Workload(cfg.Records, cfg.Keys)
	prodCtx, stopProducing := context.WithCancel(ctx)
	defer stopProducing()
	g := newGate(cfg)
	defer g.release()
	produced := make(chan struct{})
	origin := time.Now()
	events.start(origin)
	go func() {
		defer close(produced)
		interval := time.Second / time.Duration(cfg.Rate)
		begin := time.Now()
		for i, v := range values {
			if i == g.at {
				select {
				case <-g.open:
				case <-prodCtx.Done():
					return
				}
			}
			if ahead := time.Until(begin.Add(time.Duration(i) * interval)); ahead > time.Millisecond {
				select {
				case <-time.After(ahead):
				case <-prodCtx.Done():
				}
			}
			if prodCtx.Err() != nil {
				return
			}
			rec.sent(i)
			snd.send(prodCtx, cfg.Topic, v)
			sent.Add(1)
		}
	}()

	s := &schedule{cfg: cfg, adm: adm, prog: prog, sent: &sent, produced: produced, tally: t, gate: g,
		killed: map[int32]bool{}, isolated: map[int32]bool{}, paused: map[int32]bool{},
		frozen: map[int32]bool{}, ctrlCut: map[int32]bool{}, delayed: map[int32]bool{}, ctrlDelayed: map[int32]bool{}, cuts: map[[2]int32]bool{},
		nemesis: nemesis, controller: controller, events: events}
	schedErr := s.run(ctx)
	g.release()
	if rerr := s.restore(ctx); schedErr == nil {
		schedErr = rerr
	}
	_, res.FaultEvents = events.snapshot()
	if schedErr != nil {
		stopProducing()
		<-produced
		return res, schedErr
	}
	select {
	case <-produced:
	case <-ctx.Done():
		<-produced
		return res, ctx.Err()
	}
	res.Sent = int(sent.Load())

	prog.stage("await acknowledgements")
	fctx, cancel := context.WithTimeout(ctx, produce.DeliveryTimeout+30*time.Second)
	ferr := snd.flush(fctx, res.Sent)
	cancel()
	stopWatching()
	if ferr != nil {
		return res, ferr
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	cerr := snd.close(cctx)
	cancel()
	closed = true
	if cerr != nil {
		return res, cerr
	}
	t.mu.Lock()
	res.Failed = t.failed
	if t.firstErr != nil {
		res.FirstError = t.firstErr.Error()
	}
	res.Acked = slices.Clone(t.acked)
	t.mu.Unlock()

	prog.stage("wait for a full ISR")
	if err := waitHealthy(ctx, adm, cfg.Topic, healthyTimeout); err != nil {
		return res, err
	}
	prog.stage("read back")
	read, polls, corrupt, err := readBack(ctx, cfg, adm, origin, rec)
	if err != nil {
		return res, err
	}
	res.Corrupt = corrupt
	res.Anomalies = Analyze(History{Seed: res.Seed, Sends: t.history(origin), Polls: polls, Faults: res.FaultEvents})
	if side != nil {
		prog.stage("consumers catch up")
		if err := side.finish(ctx, read); err != nil {
			return res, err
		}
	}
	acked := make([]Value, len(res.Acked))
	for i, a := range res.Acked {
		acked[i] = a.Value
	}
	res.Report = Check(acked, read)
	slices.SortFunc(res.Acked, func(a, b Ack) int {
		if a.Value.Key != b.Value.Key {
			return a.Value.Key - b.Value.Key
		}
		return a.Value.Seq - b.Value.Seq
	})
	res.Duration = time.Since(start)
	res.Timeline = rec.timeline()
	prog.stage("done")
	return res, nil
}

// randomSchedule draws the run's random schedule from cfg.Seed for the
// cluster's brokers, the topic's partitions and the injector's operations,
// over the workload's duration (at least two seconds: the default
// workload's, so that every window strikes while records are sent); it returns the
// controller the metadata names too.
func randomSchedule(ctx context.Context, adm *kadm.Client, cfg Config) (Schedule, int32, error) {
	md, err := adm.Metadata(ctx)
	if err != nil {
		return Schedule{}, -1, fmt.Errorf("verify: metadata for the random schedule: %w", err)
	}
	var brokers []int32
	for _, b := range md.Brokers {
		brokers = append(brokers, b.NodeID)
	}
	slices.Sort(brokers)
	span := max(minSpan, time.Duration(cfg.Records)*time.Second/time.Duration(cfg.Rate))
	return NewSchedule(cfg.Seed, Shape{Brokers: brokers, Partitions: cfg.Partitions, Ops: SupportedOps(cfg.Faults),
		Span: span, Durable: cfg.TopicConfigs["flush.messages"] == "1"}), md.Controller, nil
}

// createTopic creates the run's topic with the no-loss topic settings.
func createTopic(ctx context.Context, adm *kadm.Client, cfg Config) error {
	two, off := "2", "false"
	configs := map[string]*string{
		"min.insync.replicas":            &two,
		"unclean.leader.election.enable": &off,
	}
	for k, v := range cfg.TopicConfigs {
		configs[k] = &v
	}
	resp, err := adm.CreateTopic(ctx, cfg.Partitions, cfg.ReplicationFactor, configs, cfg.Topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("verify: create topic %s (%d partitions, replication factor %d): %w",
			cfg.Topic, cfg.Partitions, cfg.ReplicationFactor, err)
	}
	return nil
}

// waitHealthy waits until every partition of topic has a leader and every
// replica in its ISR.
func waitHealthy(ctx context.Context, adm *kadm.Client, topic string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last string
	for {
		md, err := adm.Metadata(ctx, topic)
		switch td, ok := md.Topics[topic]; {
		case err != nil:
			last = err.Error()
		case !ok || td.Err != nil || len(td.Partitions) == 0:
			last = fmt.Sprintf("topic not ready (%v)", td.Err)
		default:
			last = ""
			for _, p := range td.Partitions.Sorted() {
				if p.Leader < 0 || len(p.ISR) < len(p.Replicas) || p.Err != nil {
					last = fmt.Sprintf("partition %d: leader %d, ISR %v of replicas %v", p.Partition, p.Leader, p.ISR, p.Replicas)
					break
				}
			}
			if last == "" {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("verify: topic %s not healthy after %v: %s: %w", topic, timeout, last, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// readBack consumes every partition from the start up to its end offset
// and returns the workload records, each poll of them (times since
// origin), and the count of records that were not workload values. It notes
// its progress in rec.
func readBack(ctx context.Context, cfg Config, adm *kadm.Client, origin time.Time, rec *recorder) ([]Record, []Poll, int, error) {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	ends, err := stableEndOffsets(ctx, adm, cfg.Topic, settleTime(cfg.Preset))
	if err != nil {
		return nil, nil, 0, err
	}
	want := map[int32]int64{}
	parts := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
			parts[o.Partition] = kgo.NewOffset().AtStart()
		}
	})
	if len(want) == 0 {
		return nil, nil, 0, nil
	}
	cl, err := kgo.NewClient(cfg.clientOpts(
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{cfg.Topic: parts}),
		kgo.FetchMaxWait(100*time.Millisecond), kgo.MetadataMinAge(100*time.Millisecond))...)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("verify: %w", err)
	}
	defer cl.Close()
	next := map[int32]int64{}
	var out []Record
	var polls []Poll
	corrupt := 0
	remaining := func() int64 {
		var n int64
		for p, end := range want {
			n += end - next[p]
		}
		return n
	}
	rec.readProgress(remaining())
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, nil, 0, fmt.Errorf("verify: reading %s back: offsets reached %v of %v: %w", cfg.Topic, next, want, err)
		}
		poll := Poll{At: time.Since(origin)}
		fs.EachRecord(func(r *kgo.Record) {
			next[r.Partition] = r.Offset + 1
			v, err := ParseValue(r.Value)
			if err != nil {
				corrupt++
				return
			}
			poll.Records = append(poll.Records, Record{Partition: r.Partition, Offset: r.Offset, Value: v})
		})
		if len(poll.Records) > 0 {
			out = append(out, poll.Records...)
			polls = append(polls, poll)
		}
		for p, end := range want {
			if next[p] >= end {
				delete(want, p)
			}
		}
		rec.readProgress(remaining())
	}
	return out, polls, corrupt, nil
}

// stableEndOffsets lists the topic's end offsets until two answers settle
// apart agree (see settleTime). Errors are asked
// again until ctx ends, unless Kafka answered with a code that cannot pass
// (see permanentKafkaError): OFFSET_NOT_AVAILABLE from a new leader whose high
// watermark has not yet caught up, NOT_LEADER_OR_FOLLOWER during an election,
// and a refused dial to a leader that metadata still names after it was
// killed (a broker applies a fencing a moment after the controller decides
// it) all pass.
func stableEndOffsets(ctx context.Context, adm *kadm.Client, topic string, settle time.Duration) (kadm.ListedOffsets, error) {
	var prev map[int32]int64
	var last error
	for {
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err == nil {
			err = ends.Error()
		}
		var cur map[int32]int64
		switch {
		case err != nil && permanentKafkaError(err):
			return nil, fmt.Errorf("verify: end offsets of %s: %w", topic, err)
		case err != nil:
			prev, last = nil, err
		default:
			cur = map[int32]int64{}
			ends.Each(func(o kadm.ListedOffset) { cur[o.Partition] = o.Offset })
			if prev != nil && maps.Equal(prev, cur) {
				return ends, nil
			}
		}
		prev = cur
		select {
		case <-ctx.Done():
			if last != nil {
				return nil, fmt.Errorf("verify: end offsets of %s: %w (last answer: %v)", topic, ctx.Err(), last)
			}
			return nil, fmt.Errorf("verify: end offsets of %s: %w", topic, ctx.Err())
		case <-time.After(settle):
		}
	}
}

// settleTime is how far apart two listings of the end offsets must agree
// before the topic is read back. A record sent with acks=0 counts as sent
// once it left the client, and the broker may still be appending it, so
// AtMostOnce's wait is longer; every other preset's records are in the log
// once acknowledged (or failed), and the second answer only guards
// against one taken in the middle of an election.
func settleTime(p produce.Preset) time.Duration {
	if p == produce.AtMostOnce {
		return 200 * time.Millisecond
	}
	return 50 * time.Millisecond
}

// permanentKafkaError reports whether err, or one of the pieces of a sharded
// request in it, is a Kafka error code that asking again cannot change
// (an authorization failure, an unsupported version). Transport errors and
// retriable codes are not.
func permanentKafkaError(err error) bool {
	var shards *kadm.ShardErrors
	if errors.As(err, &shards) {
		return slices.ContainsFunc(shards.Errs, func(s kadm.ShardError) bool { return permanentKafkaError(s.Err) })
	}
	var ke *kerr.Error
	return errors.As(err, &ke) && !ke.Retriable
}

// progressor reports progress at every stage and periodically.
type progressor struct {
	fn     func(Progress)
	seed   int64
	events *eventLog
	total  int
	sent   *atomic.Int64
	t      *tally
	mu     sync.Mutex
	cur    string
	done   chan struct{}
	wg     sync.WaitGroup
}

func newProgressor(cfg Config, sent *atomic.Int64, t *tally, events *eventLog) *progressor {
	p := &progressor{fn: cfg.Progress, total: cfg.Records, sent: sent, t: t, done: make(chan struct{}), events: events}
	if cfg.Fault == FaultRandom {
		p.seed = cfg.Seed
	}
	if p.fn == nil {
		return p
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-p.done:
				return
			case <-tick.C:
				p.emit("")
			}
		}
	}()
	return p
}

func (p *progressor) stage(s string) { p.emit(s) }

func (p *progressor) emit(stage string) {
	if p.fn == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if stage != "" {
		p.cur = stage
	}
	acked, failed := p.t.counts()
	p.fn(Progress{Stage: p.cur, Records: p.total, Sent: int(p.sent.Load()), Acked: acked, Failed: failed,
		Seed: p.seed, Faults: p.events.active()})
}

func (p *progressor) stop() {
	select {
	case <-p.done:
	default:
		close(p.done)
	}
	p.wg.Wait()
}
