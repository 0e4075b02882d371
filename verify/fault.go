package verify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Fault names a fault schedule: what happens to the cluster while the
// workload is produced.
type Fault string

// The fault schedules. Each strikes once a third of the records has been
// handed to the producer, at the brokers of one partition: the one with
// the most acknowledged records by then (so that the fault hits records
// even when few keys leave a partition empty). Each puts every broker back
// before the run reads the topic.
const (
	// FaultNone produces without faults.
	FaultNone Fault = "none"

	// FaultKillLeader kills the partition's leader, waits until another
	// replica leads, and restarts the old leader.
	FaultKillLeader Fault = "kill-leader"

	// FaultKillFollower kills a follower of the partition (one that leads
	// no partition of the topic, if there is one), waits until it has left
	// the ISR, and restarts it.
	FaultKillFollower Fault = "kill-follower"

	// FaultIsolateLeader cuts the partition's leader off from the other
	// brokers and the controller (clients still reach it), waits until
	// another replica leads, and heals it.
	FaultIsolateLeader Fault = "isolate-leader"

	// FaultPauseFollowersKillLeader holds the producer until every
	// follower of the partition is in the ISR, pauses their replication,
	// produces until the leader has acknowledged records the followers
	// cannot have (a window shorter than the replica lag bound, so the
	// followers stay in the ISR), kills the leader, resumes the followers, waits until one of them leads and
	// restarts the old leader. With acks=1 the records acknowledged in the
	// window are lost; with acks=all they are never acknowledged there and
	// are retried to the new leader.
	FaultPauseFollowersKillLeader Fault = "pause-followers-then-kill-leader"

	// FaultPowerLossAllReplicas cuts the power of every replica of the
	// partition at once (see [PowerLosser]): each broker is killed and loses
	// every byte it had not fsynced, then all are restarted. It is not part
	// of the default matrix ([Faults]); name it to run it. With the topic's
	// default flush policy (flush.messages never, as Kafka: durability comes
	// from replication) acknowledged records may be lost, which even NoLoss
	// does not promise against; with flush.messages=1 (Config.TopicConfigs)
	// nothing acknowledged may be lost. See [Result.Err].
	FaultPowerLossAllReplicas Fault = "power-loss-all-replicas"
)

// Faults returns the fault schedules of the default matrix, in the order
// it runs them.
func Faults() []Fault {
	return []Fault{FaultNone, FaultKillLeader, FaultKillFollower, FaultIsolateLeader, FaultPauseFollowersKillLeader}
}

// AllFaults returns every fault schedule: [Faults] and those run only
// when named, such as [FaultPowerLossAllReplicas].
func AllFaults() []Fault { return append(Faults(), FaultPowerLossAllReplicas) }

// ErrUnknownFault is returned for a fault schedule name that is not one of
// [Faults].
var ErrUnknownFault = errors.New("verify: unknown fault schedule")

// ParseFault returns the fault schedule with the given name, such as
// "kill-leader". Case is ignored.
func ParseFault(name string) (Fault, error) {
	return parseNamed(name, AllFaults(), func(f Fault) string { return string(f) }, ErrUnknownFault)
}

// parseNamed returns the element of all whose name (case ignored) is name, or an error wrapping
// unknown that lists every name: the one parser of verify's named values.
func parseNamed[T any](name string, all []T, nameOf func(T) string, unknown error) (T, error) {
	names := make([]string, len(all))
	for i, v := range all {
		if strings.EqualFold(name, nameOf(v)) {
			return v, nil
		}
		names[i] = nameOf(v)
	}
	var zero T
	return zero, fmt.Errorf("%w %q (want one of %s)", unknown, name, strings.Join(names, ", "))
}

// Ops returns the operations the schedule needs from a [FaultInjector],
// besides Leader.
func (f Fault) Ops() []Op {
	switch f {
	case FaultKillLeader, FaultKillFollower:
		return []Op{OpKill, OpRestart}
	case FaultIsolateLeader:
		return []Op{OpIsolate, OpHeal}
	case FaultPauseFollowersKillLeader:
		return []Op{OpPauseReplication, OpResumeReplication, OpKill, OpRestart}
	case FaultPowerLossAllReplicas:
		return []Op{OpPowerLoss, OpRestart}
	}
	return nil
}

// Op names one operation of a [FaultInjector].
type Op string

// The operations of a FaultInjector.
const (
	OpKill              Op = "kill"
	OpRestart           Op = "restart"
	OpIsolate           Op = "isolate"
	OpHeal              Op = "heal"
	OpPauseReplication  Op = "pause-replication"
	OpResumeReplication Op = "resume-replication"
	// OpPowerLoss is [PowerLosser.PowerLoss], which a FaultInjector may
	// implement.
	OpPowerLoss Op = "power-loss"
	// OpPause and OpResume are [Pauser]'s: a stopped process (SIGSTOP) and
	// its thaw.
	OpPause  Op = "pause"
	OpResume Op = "resume"
	// OpCutLink and OpHealLink are [LinkCutter]'s: a one-way partition
	// between two brokers and its repair.
	OpCutLink  Op = "cut-link"
	OpHealLink Op = "heal-link"
	// OpCutController and OpReconnectController are [ControllerCutter]'s: a
	// partition between one broker and the controller only.
	OpCutController       Op = "cut-controller"
	OpReconnectController Op = "reconnect-controller"
	// OpLatency is [Delayer.SetLatency]: added latency on every message a
	// broker receives (zero removes it).
	OpLatency Op = "latency"
	// OpControllerLatency is [ControllerDelayer.SetControllerLatency]: added
	// latency on a broker's link to the controller only (zero removes it).
	OpControllerLatency Op = "controller-latency"
)

// Ops returns every operation a [FaultInjector] may offer, in a fixed
// order: the interface's own and those of the optional interfaces
// ([PowerLosser], [Pauser], [LinkCutter], [ControllerCutter], [Delayer],
// [ControllerDelayer]).
func Ops() []Op {
	return []Op{OpKill, OpRestart, OpIsolate, OpHeal, OpPauseReplication, OpResumeReplication,
		OpPowerLoss, OpPause, OpResume, OpCutLink, OpHealLink, OpCutController, OpReconnectController, OpLatency,
		OpControllerLatency}
}

// isLatency reports whether op sets a latency, which a zero latency
// ([latencyOff]) takes away.
func isLatency(op Op) bool { return op == OpLatency || op == OpControllerLatency }

// Pauser is implemented by a [FaultInjector] that can freeze a broker's
// process (SIGSTOP) and thaw it (SIGCONT).
type Pauser interface {
	Pause(ctx context.Context, broker int32) error
	Resume(ctx context.Context, broker int32) error
}

// LinkCutter is implemented by a [FaultInjector] that can cut one
// direction of the link between two brokers: from can no longer reach to,
// while to still reaches from.
type LinkCutter interface {
	CutLink(ctx context.Context, from, to int32) error
	HealLink(ctx context.Context, from, to int32) error
}

// ControllerCutter is implemented by a [FaultInjector] that can cut a
// broker's link to the controller only (it still serves clients and
// replicates).
type ControllerCutter interface {
	CutController(ctx context.Context, broker int32) error
	ReconnectController(ctx context.Context, broker int32) error
}

// Delayer is implemented by a [FaultInjector] that can add latency (plus
// up to jitter) to every message a broker receives; zero removes it.
type Delayer interface {
	SetLatency(ctx context.Context, broker int32, latency, jitter time.Duration) error
}

// ControllerDelayer is implemented by a [FaultInjector] that can add latency
// (plus up to jitter) to every message between a broker and the controller
// only, both ways, so that its heartbeats and ISR changes arrive late while
// clients and other brokers reach it at full speed; zero removes it.
type ControllerDelayer interface {
	SetControllerLatency(ctx context.Context, broker int32, latency, jitter time.Duration) error
}

// SupportedOps returns the operations fi can perform, as far as it tells
// (see [Limited]), in the order of [Ops]; none if fi is nil.
func SupportedOps(fi FaultInjector) []Op {
	if fi == nil {
		return nil
	}
	var out []Op
	for _, op := range Ops() {
		if supportsOp(fi, op) {
			out = append(out, op)
		}
	}
	return out
}

// supportsOp reports whether fi has op: the optional interface it needs,
// and Limited's word.
func supportsOp(fi FaultInjector, op Op) bool {
	var has bool
	switch op {
	case OpPowerLoss:
		_, has = fi.(PowerLosser)
	case OpPause, OpResume:
		_, has = fi.(Pauser)
	case OpCutLink, OpHealLink:
		_, has = fi.(LinkCutter)
	case OpCutController, OpReconnectController:
		_, has = fi.(ControllerCutter)
	case OpLatency:
		_, has = fi.(Delayer)
	case OpControllerLatency:
		_, has = fi.(ControllerDelayer)
	default:
		has = true
	}
	if l, limited := fi.(Limited); has && limited {
		has = l.Supports(op)
	}
	return has
}

// PowerLosser is implemented by a [FaultInjector] that can cut the power of
// brokers: each is killed and loses every byte it had not fsynced, and stays
// down until Restart.
type PowerLosser interface {
	PowerLoss(ctx context.Context, brokers ...int32) error
}

// ErrUnsupported is returned (wrapped) by a [FaultInjector] operation the
// injector cannot perform, and by [Run] for a schedule that needs one.
var ErrUnsupported = errors.New("verify: fault not supported by this injector")

// FaultInjector acts on a cluster's brokers, named by node id. Operations
// an injector cannot perform return an error matching [ErrUnsupported].
// Implementations must be safe for use by one goroutine at a time.
type FaultInjector interface {
	// Kill stops the broker abruptly.
	Kill(ctx context.Context, broker int32) error
	// Restart starts a killed broker again with its data.
	Restart(ctx context.Context, broker int32) error
	// Isolate cuts the broker off from the other brokers and the
	// controller; clients still reach it.
	Isolate(ctx context.Context, broker int32) error
	// Heal reconnects an isolated broker.
	Heal(ctx context.Context, broker int32) error
	// PauseReplication stops the broker's replica fetchers.
	PauseReplication(ctx context.Context, broker int32) error
	// ResumeReplication starts the broker's replica fetchers again.
	ResumeReplication(ctx context.Context, broker int32) error
	// Leader returns the partition's current leader, or -1 if it has none.
	Leader(ctx context.Context, topic string, partition int32) (int32, error)
}

// Limited is implemented by a [FaultInjector] that cannot perform every
// operation, so that [Run] can refuse a schedule before producing anything.
type Limited interface {
	// Supports reports whether the injector can perform op.
	Supports(op Op) bool
}

// Supports reports whether fi can run schedule f: it has every operation
// f needs, as far as fi tells (see [Limited]). FaultNone needs no
// injector.
func Supports(fi FaultInjector, f Fault) bool { return len(MissingOps(fi, f)) == 0 }

// MissingOps returns the operations schedule f needs that fi lacks, as far
// as fi tells (see [Limited]); all of them if fi is nil.
func MissingOps(fi FaultInjector, f Fault) []Op {
	return missingOps(fi, f.Ops())
}

// missingOps returns the operations of ops that fi lacks; all of them if fi
// is nil.
func missingOps(fi FaultInjector, ops []Op) []Op {
	if fi == nil {
		return slices.Clone(ops)
	}
	var missing []Op
	for _, op := range ops {
		if !supportsOp(fi, op) {
			missing = append(missing, op)
		}
	}
	return missing
}
