package group

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/testkit"
)

// sim is a minimal group client, driving the coordinator the way a real
// consumer does: join (following MEMBER_ID_REQUIRED), sync (as leader it
// assigns each member its own member id as the assignment bytes), then
// heartbeat, rejoining whenever the coordinator says so.
type sim struct {
	t        *testing.T
	c        *Coordinator
	group    string
	client   string
	session  time.Duration
	interval time.Duration

	mu         sync.Mutex
	id         string
	gen        int32
	leaderOf   int // members assigned when this sim last led
	assignment []byte
	synced     bool

	stop   chan struct{}
	done   chan struct{}
	leave  bool // send LeaveGroup when stopped
	silent bool // when stopped, simply stop talking
}

func startSim(t *testing.T, c *Coordinator, group, client string, session, interval time.Duration) *sim {
	s := &sim{
		t: t, c: c, group: group, client: client, session: session, interval: interval,
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	go s.run()
	t.Cleanup(func() { s.halt() })
	return s
}

func (s *sim) halt() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

type simState struct {
	id         string
	gen        int32
	assignment string
	synced     bool
	leaderOf   int
}

func (s *sim) state() simState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return simState{s.id, s.gen, string(s.assignment), s.synced, s.leaderOf}
}

func (s *sim) ctx() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	return WithClient(ctx, s.client, "/10.0.0.1"), cancel
}

func (s *sim) stopped() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

func (s *sim) run() {
	defer close(s.done)
	for !s.stopped() {
		s.round()
	}
	if s.leave {
		ctx, cancel := s.ctx()
		defer cancel()
		r := kmsg.NewPtrLeaveGroupRequest()
		r.Version = 5
		r.Group = s.group
		s.mu.Lock()
		r.Members = []kmsg.LeaveGroupRequestMember{{MemberID: s.id}}
		s.mu.Unlock()
		s.c.LeaveGroup(ctx, r)
	}
}

// round is one join, sync and heartbeat cycle.
func (s *sim) round() {
	ctx, cancel := s.ctx()
	defer cancel()
	s.mu.Lock()
	id := s.id
	s.synced = false
	s.mu.Unlock()

	req := joinReq(s.group, id, withSession(s.session), withRebalance(time.Second))
	jr := s.c.JoinGroup(ctx, req)
	switch jr.ErrorCode {
	case 0:
	case codeMemberIDRequired:
		s.mu.Lock()
		s.id = jr.MemberID
		s.mu.Unlock()
		return
	case codeUnknownMemberID:
		s.mu.Lock()
		s.id = ""
		s.mu.Unlock()
		return
	default:
		time.Sleep(s.interval)
		return
	}
	s.mu.Lock()
	s.id, s.gen = jr.MemberID, jr.Generation
	s.mu.Unlock()

	assign := map[string][]byte{}
	if jr.LeaderID == jr.MemberID {
		for _, m := range jr.Members {
			assign[m.MemberID] = []byte(m.MemberID)
		}
	}
	sr := s.c.SyncGroup(ctx, syncReq(s.group, jr.MemberID, jr.Generation, assign))
	if sr.ErrorCode != 0 {
		if sr.ErrorCode == codeUnknownMemberID {
			s.mu.Lock()
			s.id = ""
			s.mu.Unlock()
		}
		return
	}
	s.mu.Lock()
	s.assignment = sr.MemberAssignment
	s.synced = true
	if jr.LeaderID == jr.MemberID {
		s.leaderOf = len(jr.Members)
	} else {
		s.leaderOf = 0
	}
	s.mu.Unlock()

	for {
		select {
		case <-s.stop:
			return
		case <-time.After(s.interval):
		}
		code := heartbeat(ctx, s.c, s.group, jr.MemberID, jr.Generation)
		switch code {
		case 0:
			continue
		case codeUnknownMemberID:
			s.mu.Lock()
			s.id = ""
			s.mu.Unlock()
		}
		return
	}
}

// waitStable waits until every sim is synced in one generation with its own
// id as its assignment, exactly one of them led all of them, and the
// coordinator describes the group as Stable with exactly those members. It
// returns the generation.
func waitStable(t *testing.T, c *Coordinator, group string, sims ...*sim) int32 {
	t.Helper()
	var gen int32
	testkit.WaitFor(t, 10*time.Second, "a stable generation", func() bool {
		leaders := 0
		ids := map[string]bool{}
		for i, s := range sims {
			st := s.state()
			if !st.synced || st.assignment != st.id || (i > 0 && st.gen != gen) {
				return false
			}
			gen = st.gen
			ids[st.id] = true
			if st.leaderOf == len(sims) {
				leaders++
			}
		}
		if leaders != 1 {
			return false
		}
		d := describe(context.Background(), c, group)
		if d.State != "Stable" || len(d.Members) != len(sims) {
			return false
		}
		for _, m := range d.Members {
			if !ids[m.MemberID] || string(m.MemberAssignment) != m.MemberID {
				return false
			}
		}
		return true
	})
	return gen
}
