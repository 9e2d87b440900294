// Consistent hashing with bounded loads: which member should own each
// partition. Pure.

package shardproto

import (
	"fmt"
	"math"
	"sort"
	"strconv"

	"github.com/rotor-dev/rotor/internal/mixhash"
)

// RingMember is one owner of partitions on the ring. Weight defaults to 1.
type RingMember struct {
	Name   string
	Weight int
}

// RingConfig fixes the ring's shape. Zero values take the defaults.
type RingConfig struct {
	// Partitions is P, fixed at install (default 256).
	Partitions int
	// LoadFactor bounds each member to this multiple of its fair share
	// (default 1.25; must be > 1).
	LoadFactor float64
	// PointsPerWeight is the number of ring points per unit of weight
	// (default 100): more points, smoother shares.
	PointsPerWeight int
	// Hash hashes ring keys (default FNV-1a 64 with a finalizer); tests
	// inject one to force positions.
	Hash func([]byte) uint64
}

func (c RingConfig) withDefaults() RingConfig {
	if c.Partitions <= 0 {
		c.Partitions = 256
	}
	if c.LoadFactor <= 1 {
		c.LoadFactor = 1.25
	}
	if c.PointsPerWeight <= 0 {
		c.PointsPerWeight = 100
	}
	if c.Hash == nil {
		c.Hash = hash
	}
	return c
}

// Assignment maps partition index to member name ("" when no members).
type Assignment []string

type point struct {
	h      uint64
	member int
}

// ring is the hash ring of one membership: members sorted by name, their
// points sorted by hash, each member's capacity and fair share, and each
// partition's hash.
type ring struct {
	cfg      RingConfig
	ms       []RingMember
	index    map[string]int
	points   []point
	capacity []int
	fair     []int
}

func newRing(cfg RingConfig, members []RingMember) (*ring, error) {
	ms := append([]RingMember(nil), members...)
	sort.Slice(ms, func(i, j int) bool { return ms[i].Name < ms[j].Name })
	total := 0
	index := make(map[string]int, len(ms))
	for i := range ms {
		if ms[i].Weight <= 0 {
			ms[i].Weight = 1
		}
		if i > 0 && ms[i].Name == ms[i-1].Name {
			return nil, fmt.Errorf("ring: member %q listed twice", ms[i].Name)
		}
		index[ms[i].Name] = i
		total += ms[i].Weight
	}
	points := make([]point, 0, total*cfg.PointsPerWeight)
	for i, m := range ms {
		for v := 0; v < m.Weight*cfg.PointsPerWeight; v++ {
			points = append(points, point{h: cfg.Hash([]byte(m.Name + "#" + strconv.Itoa(v))), member: i})
		}
	}
	sort.Slice(points, func(i, j int) bool {
		if points[i].h != points[j].h {
			return points[i].h < points[j].h
		}
		return points[i].member < points[j].member
	})
	r := &ring{cfg: cfg, ms: ms, index: index, points: points, capacity: make([]int, len(ms)), fair: make([]int, len(ms))}
	for i, m := range ms {
		r.capacity[i] = Capacity(cfg, m.Weight, total)
		r.fair[i] = int(math.Ceil(float64(cfg.Partitions) * float64(m.Weight) / float64(total)))
	}
	return r, nil
}

// start is the index of the first point clockwise from partition p.
func (r *ring) start(p int) int {
	h := r.cfg.Hash([]byte("partition-" + strconv.Itoa(p)))
	return sort.Search(len(r.points), func(i int) bool { return r.points[i].h >= h }) % len(r.points)
}

// walk gives p to the first member clockwise from its hash with room.
func (r *ring) walk(p int, load []int) int {
	start := r.start(p)
	for k := 0; k < len(r.points); k++ {
		pt := r.points[(start+k)%len(r.points)]
		if load[pt.member] < r.capacity[pt.member] {
			return pt.member
		}
	}
	return -1 // unreachable: capacities add up to more than P
}

// prepare fills cfg's defaults and returns an empty assignment and the
// ring of members, or a nil ring when there are none.
func prepare(cfg RingConfig, members []RingMember) (*ring, Assignment, error) {
	cfg = cfg.withDefaults()
	out := make(Assignment, cfg.Partitions)
	if len(members) == 0 {
		return nil, out, nil
	}
	r, err := newRing(cfg, members)
	if err != nil {
		return nil, nil, err
	}
	return r, out, nil
}

// Assign computes the assignment of cfg.Partitions partitions to members
// from scratch: each partition, in index order, goes to the first member
// clockwise with room. Members with the same name are an error.
func Assign(cfg RingConfig, members []RingMember) (Assignment, error) {
	r, out, err := prepare(cfg, members)
	if r == nil || err != nil {
		return out, err
	}
	load := make([]int, len(r.ms))
	for p := range out {
		if i := r.walk(p, load); i >= 0 {
			load[i]++
			out[p] = r.ms[i].Name
		}
	}
	return out, nil
}

// AssignFrom computes the assignment that moves the fewest partitions
// away from prev (the owners now; "" or a name not among members for a
// partition without a live one) while keeping every member within its
// capacity. Assign's greedy walk is order-dependent: one member more or
// less reshuffles partitions that overflowed past full members, and at
// hundreds of members that added a third to every join's movement.
// AssignFrom instead, in five passes over the partitions:
//
//  1. keeps each partition whose owner is its first member clockwise
//     (its consistent-hashing choice), within capacity;
//  2. gives a newcomer (a member that held nothing) the partitions its
//     points captured, while it holds less than its fair share;
//  3. keeps the rest with their owner, within capacity;
//  4. gives partitions whose owner is gone to their first member while it
//     holds less than its fair share — after the keeps, so that taking one
//     never pushes a member's own partitions over its capacity;
//  5. walks the ring for what is left (a departed or over-capacity
//     owner's partitions), as Assign does.
//
// Members that lost partitions to newcomers do not pull others back:
// that would be movement nobody needs.
//
// A join then moves only the newcomer's partitions, a leave only the
// leaver's, unless capacities shrink. Planned from a balanced assignment,
// the result is a fixed point (AssignFrom of its own output returns it);
// from an arbitrary one, a member that newcomers stripped of everything
// is itself a newcomer the next time, so it settles a step later.
func AssignFrom(cfg RingConfig, members []RingMember, prev Assignment) (Assignment, error) {
	r, out, err := prepare(cfg, members)
	if r == nil || err != nil {
		return out, err
	}
	load := make([]int, len(r.ms))
	first := make([]int, len(out))
	owner := make([]int, len(out))
	for p := range out {
		first[p] = r.points[r.start(p)].member
		owner[p] = -1
		if p < len(prev) {
			if i, ok := r.index[prev[p]]; ok {
				owner[p] = i
			}
		}
	}
	give := func(p, i int) {
		out[p] = r.ms[i].Name
		load[i]++
	}
	for p := range out {
		if owner[p] == first[p] && load[first[p]] < r.capacity[first[p]] {
			give(p, first[p])
		}
	}
	held := make([]bool, len(r.ms))
	for p := range out {
		if owner[p] >= 0 {
			held[owner[p]] = true
		}
	}
	pull := func(p int, ok bool) {
		f := first[p]
		if out[p] == "" && ok && load[f] < min(r.fair[f], r.capacity[f]) {
			give(p, f)
		}
	}
	for p := range out {
		pull(p, owner[p] >= 0 && owner[p] != first[p] && !held[first[p]])
	}
	for p := range out {
		if out[p] == "" && owner[p] >= 0 && load[owner[p]] < r.capacity[owner[p]] {
			give(p, owner[p])
		}
	}
	for p := range out {
		pull(p, owner[p] < 0)
	}
	for p := range out {
		if out[p] == "" {
			if i := r.walk(p, load); i >= 0 {
				give(p, i)
			}
		}
	}
	return out, nil
}

// Capacity is the most partitions a member of weight w may hold when the
// members' weights add up to total: ceil(LoadFactor × P × w / total).
func Capacity(cfg RingConfig, w, total int) int {
	cfg = cfg.withDefaults()
	return int(math.Ceil(cfg.LoadFactor * float64(cfg.Partitions) * float64(w) / float64(total)))
}

// Moved counts partitions whose owner differs between a and b.
func Moved(a, b Assignment) int {
	n := 0
	for i := range a {
		if i >= len(b) || a[i] != b[i] {
			n++
		}
	}
	return n
}

// Loads counts partitions per member.
func (a Assignment) Loads() map[string]int {
	out := map[string]int{}
	for _, m := range a {
		out[m]++
	}
	return out
}

// PartitionOf is the partition of a namespace: hash(namespace) mod P. It
// never changes for an installation, whatever the membership.
func PartitionOf(namespace string, partitions int) int {
	return int(hash([]byte(namespace)) % uint64(partitions))
}

// hash is the installation's hash (package mixhash): the ring's points
// and a namespace's partition come from it.
func hash(b []byte) uint64 { return mixhash.Sum64(string(b)) }
