// Package podip hands out pod IPs from a loopback prefix. Pods of the image
// runtime share the host's network; each gets its own 127.x address to bind
// its listeners to, so two pods can both listen on :9090 (on Linux the
// whole of 127.0.0.0/8 reaches the loopback interface with no set-up).
package podip

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"sync"
)

// Allocator assigns addresses of one prefix to owners (pod UIDs). An
// address is never given to two owners at once. The first choice for a
// pod is a hash of its name, so a pod re-created under the same name (a
// StatefulSet's) usually gets its old address back. Safe for concurrent
// use.
type Allocator struct {
	prefix   netip.Prefix
	size     uint64
	reserved map[netip.Addr]bool

	mu      sync.Mutex
	owner   map[netip.Addr]string
	byOwner map[string]netip.Addr
}

// New returns an allocator for prefix (IPv4, at least 4 addresses). The
// prefix's network and broadcast addresses and the reserved ones (the
// node's own IP) are never handed out.
func New(prefix netip.Prefix, reserved ...netip.Addr) (*Allocator, error) {
	if !prefix.Addr().Is4() || prefix.Bits() > 30 {
		return nil, fmt.Errorf("pod CIDR %s: want an IPv4 prefix of /30 or larger, e.g. 127.1.0.0/16", prefix)
	}
	prefix = prefix.Masked()
	a := &Allocator{
		prefix: prefix, size: 1 << (32 - prefix.Bits()),
		reserved: map[netip.Addr]bool{}, owner: map[netip.Addr]string{}, byOwner: map[string]netip.Addr{},
	}
	for _, r := range reserved {
		a.reserved[r] = true
	}
	return a, nil
}

// Prefix is the range addresses come from.
func (a *Allocator) Prefix() netip.Prefix { return a.prefix }

// Allocate returns owner's address, assigning one if it has none: prefer
// if it is usable and free (the address a pod had under a previous agent),
// else the first free address from a hash of name onwards.
func (a *Allocator) Allocate(owner, name string, prefer netip.Addr) (netip.Addr, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if addr, ok := a.byOwner[owner]; ok {
		return addr, nil
	}
	if a.free(prefer) {
		return a.take(owner, prefer), nil
	}
	start := hash(name) % a.size
	for i := uint64(0); i < a.size; i++ {
		addr := a.at((start + i) % a.size)
		if a.free(addr) {
			return a.take(owner, addr), nil
		}
	}
	return netip.Addr{}, errors.New("pod CIDR " + a.prefix.String() + " is exhausted: give the node a larger --pod-cidr")
}

// Release frees owner's address, if it has one.
func (a *Allocator) Release(owner string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if addr, ok := a.byOwner[owner]; ok {
		delete(a.byOwner, owner)
		delete(a.owner, addr)
	}
}

func (a *Allocator) free(addr netip.Addr) bool {
	if !addr.IsValid() || !a.prefix.Contains(addr) || a.reserved[addr] {
		return false
	}
	if addr == a.at(0) || addr == a.at(a.size-1) {
		return false // network and broadcast addresses
	}
	_, used := a.owner[addr]
	return !used
}

func (a *Allocator) take(owner string, addr netip.Addr) netip.Addr {
	a.owner[addr] = owner
	a.byOwner[owner] = addr
	return addr
}

func (a *Allocator) at(offset uint64) netip.Addr {
	b := a.prefix.Addr().As4()
	v := uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
	v += offset
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func hash(s string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(s))
	return h.Sum64()
}
