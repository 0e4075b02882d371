package partitioner

import "math/rand/v2"

// sticky picks the partition for records without a key: one partition until
// next is called or limit records were sent to it, then a different one
// chosen at random.
type sticky struct {
	rng   *rand.Rand
	limit int // records per partition; 0: no limit
	on    int // current partition; -1: none
	last  int // previous partition; -1: none
	count int // records sent to on
}

func newSticky(limit int) sticky {
	return sticky{
		rng:   rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		limit: limit,
		on:    -1,
		last:  -1,
	}
}

// next makes the following pick choose a new partition.
func (s *sticky) next() { s.last, s.on = s.on, -1 }

// pick returns the partition, in [0, n), for the next record without a key.
func (s *sticky) pick(n int) int {
	if s.limit > 0 && s.count >= s.limit {
		s.next()
	}
	if s.on < 0 || s.on >= n {
		p := s.rng.IntN(n)
		if p == s.last {
			p = (p + 1) % n
		}
		s.on, s.count = p, 0
	}
	s.count++
	return s.on
}
