// Package verify proves a producer preset against a live cluster: it
// produces a workload while a fault schedule hits the cluster, reads
// everything back and judges what happened to every record.
//
// The workload is N records over K keys; each value carries its key and a
// per-key sequence number ("k3:17" is the 18th record of key k3), so a
// record read back says on its own where it belongs. [Check] compares what
// the producer saw acknowledged with what a consumer reads and counts, per
// run:
//
//   - lost: acknowledged, never read back;
//   - duplicated: read back more than once (extra copies are counted);
//   - reordered: read back after a later record of the same key;
//   - unacked-present: read back although the producer never saw its
//     acknowledgement (an outcome-unknown send that did land, which is
//     allowed).
//
// [Run] drives one run: a fresh topic (replication factor 3,
// min.insync.replicas=2, unclean election off), a producer built from a
// [produce.Preset] with franz-go or sarama, and one of the fault schedules
// ([FaultNone], [FaultKillLeader], [FaultKillFollower],
// [FaultIsolateLeader], [FaultPauseFollowersKillLeader]) applied through a
// [FaultInjector]: the bundled cluster itself ([ClusterFaults]), its HTTP
// control API ([ControlFaults]) or shell commands that kill, restart, pause
// and resume a real broker ([ExecFaults]).
//
// [FaultPowerLossAllReplicas] (run only when named) cuts the power of every
// replica of a partition at once: a producer's acks=all cannot survive that
// unless every replica fsyncs before acknowledging (the topic config
// flush.messages=1, [Config.TopicConfigs]); without it a loss is shown as
// allowed ("allowed without fsync"), with it nothing may be lost.
//
// [FaultRandom] runs a seeded random schedule instead ([NewSchedule],
// Config.Seed): windows of kill, power loss, pause, isolation, one-way and
// controller-only partitions, latency, controller-link latency and paused
// replication, at most two in force at once, on the leader, a follower, the
// controller or random brokers, drawn from what the injector can do
// ([SupportedOps]: the optional [PowerLosser], [Pauser], [LinkCutter],
// [ControllerCutter], [Delayer], [ControllerDelayer]) and always ending
// healed; in a long enough span, one schedule in two also carries an
// ISR-churn chain ([FamilyISRChurn]) aimed at a pending ISR change. The same seed on the same cluster shape draws the
// same schedule.
//
// Besides the counts, every run's history (each send's outcome and time, each
// poll of the read-back with offsets, the fault events) goes through
// [Analyze], which names anomalies as Jepsen's Kafka analyses do —
// lost-write, unseen, duplicate, inconsistent-offsets, nonmonotonic-poll,
// poll-skip, reordered-within-key, and indeterminate records, which are
// counted and allowed — each with a count and up to five examples (value,
// partition, offset, seed, time, faults in force).
//
// [RunQueue] runs the queue workload (Jepsen's queue workload, with
// package consume as the consumer): the same producer run, while consumers
// of package consume in one group handle the topic and crash at random (the
// crash cuts the member's connections first, so it neither commits nor
// leaves the group, as a dead process) and restart; [RunQueues] runs
// several such groups (an order mode each) on one producer run at once.
// [CheckQueue] judges
// what they handled against the acknowledgements, the log read back and the
// group's committed offsets as they moved, and what each member's polls
// returned, generation by generation of the group; it names anomalies in
// the same vocabulary ([QueueKinds]: unseen, at-least-once-violation,
// reordered-within-key, inconsistent-offsets, nonmonotonic-poll, poll-skip,
// unexplained-rehandle), each an [Anomaly] with a count and examples, and
// counts the records run again after a crash: the at-least-once cost.
//
// [RunCopier] runs the copier workload (the shape of Kafka's transactions
// system test): the same producer run fills an input topic while copiers
// built with consume.NewExactlyOnce, in one group, copy it to an output
// topic and crash and restart at random as the queue workload's consumers
// do (a restarted copier keeps its transactional id); a read_committed
// reader reads the output while it is written and to its end, a second
// reads it all again, and the output's log is read read_uncommitted with
// its transaction markers. [CheckCopier] judges it ([CopierKinds]): the
// output against the input's acknowledged records (unseen and lost-write,
// duplicate, reordered-within-key, ...), and two anomalies of
// transactional reads: aborted-read (G1a: a read_committed reader returned
// a record whose transaction the log shows aborted) and intermediate-read
// (G1b: it returned part of a committed transaction and read past the rest,
// or a record of a transaction that never ended). [CopierAtLeastOnce] runs
// consume.New copiers with a NoLoss producer instead: under the same seeds
// they copy the records in flight at a crash twice, and the checker fails
// them.
//
// NoLoss and StrictOrder must show zero lost, duplicated and reordered
// records under every other schedule. LeaderAck (acks=1) must show loss under
// FaultPauseFollowersKillLeader, where the leader acknowledges records its
// followers never copied and then dies: a checker that could never fail
// would prove nothing.
package verify
