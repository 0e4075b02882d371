package txn

import "testing"

func TestCanTransitionFollowsKafkasTableOfPreviousStates(t *testing.T) {
	all := []State{Empty, Ongoing, PrepareCommit, PrepareAbort, CompleteCommit, CompleteAbort, Dead, PrepareEpochFence}
	// Kafka's TransactionState.validPreviousStates (classic flow), written out
	// as the allowed (from, to) pairs.
	allowed := map[[2]State]bool{
		{Empty, Empty}: true, {CompleteCommit, Empty}: true, {CompleteAbort, Empty}: true,
		{Ongoing, Ongoing}: true, {Empty, Ongoing}: true, {CompleteCommit, Ongoing}: true, {CompleteAbort, Ongoing}: true,
		{Ongoing, PrepareCommit}: true,
		{Ongoing, PrepareAbort}:  true, {PrepareEpochFence, PrepareAbort}: true,
		{PrepareCommit, CompleteCommit}: true,
		{PrepareAbort, CompleteAbort}:   true,
		{Empty, Dead}:                   true, {CompleteAbort, Dead}: true, {CompleteCommit, Dead}: true,
		{Ongoing, PrepareEpochFence}: true,
	}
	for _, from := range all {
		for _, to := range all {
			if got := CanTransition(from, to); got != allowed[[2]State{from, to}] {
				t.Errorf("CanTransition(%s, %s) = %v", from, to, got)
			}
		}
	}
	if CanTransition(State(8), Empty) || CanTransition(Empty, State(-1)) {
		t.Error("an unknown state can transition")
	}
}

func TestStateNamesAreKafkas(t *testing.T) {
	for s, want := range map[State]string{Empty: "Empty", Ongoing: "Ongoing", PrepareCommit: "PrepareCommit", PrepareAbort: "PrepareAbort",
		CompleteCommit: "CompleteCommit", CompleteAbort: "CompleteAbort", Dead: "Dead", PrepareEpochFence: "PrepareEpochFence", 9: "Unknown"} {
		if s.String() != want {
			t.Errorf("State(%d).String() = %q, want %q", s, s.String(), want)
		}
	}
}
