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

// Assign computes the assignment of cfg.Partitions partitions to members.
// Members with the same name are a programming error.
func Assign(cfg RingConfig, members []RingMember) (Assignment, error) {
	cfg = cfg.withDefaults()
	out := make(Assignment, cfg.Partitions)
	if len(members) == 0 {
		return out, nil
	}
	ms := append([]RingMember(nil), members...)
	sort.Slice(ms, func(i, j int) bool { return ms[i].Name < ms[j].Name })
	total := 0
	for i := range ms {
		if ms[i].Weight <= 0 {
			ms[i].Weight = 1
		}
		if i > 0 && ms[i].Name == ms[i-1].Name {
			return nil, fmt.Errorf("ring: member %q listed twice", ms[i].Name)
		}
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
	capacity := make([]int, len(ms))
	for i, m := range ms {
		capacity[i] = Capacity(cfg, m.Weight, total)
	}
	load := make([]int, len(ms))
	for p := 0; p < cfg.Partitions; p++ {
		h := cfg.Hash([]byte("partition-" + strconv.Itoa(p)))
		start := sort.Search(len(points), func(i int) bool { return points[i].h >= h })
		for k := 0; k < len(points); k++ {
			pt := points[(start+k)%len(points)]
			if load[pt.member] < capacity[pt.member] {
				load[pt.member]++
				out[p] = ms[pt.member].Name
				break
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
