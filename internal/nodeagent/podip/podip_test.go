package podip

import (
	"fmt"
	"net/netip"
	"testing"
)

func TestAllocate(t *testing.T) {
	mustNew := func(cidr string, reserved ...string) *Allocator {
		var rs []netip.Addr
		for _, r := range reserved {
			rs = append(rs, netip.MustParseAddr(r))
		}
		a, err := New(netip.MustParsePrefix(cidr), rs...)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	t.Run("deterministic", func(t *testing.T) {
		a1, a2 := mustNew("127.1.0.0/16"), mustNew("127.1.0.0/16")
		x, _ := a1.Allocate("uid-1", "ns/web-0", netip.Addr{})
		y, _ := a2.Allocate("uid-2", "ns/web-0", netip.Addr{})
		if x != y {
			t.Fatalf("same name got %s and %s on two allocators, want the same", x, y)
		}
	})
	t.Run("same owner same address", func(t *testing.T) {
		a := mustNew("127.1.0.0/16")
		x, _ := a.Allocate("uid-1", "ns/web-0", netip.Addr{})
		y, _ := a.Allocate("uid-1", "ns/web-0", netip.Addr{})
		if x != y {
			t.Fatalf("second Allocate for one owner gave %s, want %s", y, x)
		}
	})
	t.Run("prefer honoured when free", func(t *testing.T) {
		a := mustNew("127.1.0.0/16")
		want := netip.MustParseAddr("127.1.2.3")
		if got, _ := a.Allocate("uid-1", "ns/p", want); got != want {
			t.Fatalf("Allocate with prefer %s = %s", want, got)
		}
	})
	t.Run("prefer outside prefix ignored", func(t *testing.T) {
		a := mustNew("127.1.0.0/16")
		got, _ := a.Allocate("uid-1", "ns/p", netip.MustParseAddr("127.0.0.1"))
		if !a.Prefix().Contains(got) {
			t.Fatalf("Allocate gave %s outside %s", got, a.Prefix())
		}
	})
	t.Run("never twice and never reserved", func(t *testing.T) {
		a := mustNew("127.0.0.0/29", "127.0.0.1")
		seen := map[netip.Addr]bool{}
		for i := 0; i < 5; i++ { // 8 addresses - network - broadcast - reserved
			addr, err := a.Allocate(fmt.Sprint("uid-", i), "ns/same-name", netip.Addr{})
			if err != nil {
				t.Fatalf("allocation %d: %v", i, err)
			}
			if seen[addr] || addr.String() == "127.0.0.1" || addr.String() == "127.0.0.0" || addr.String() == "127.0.0.7" {
				t.Fatalf("allocation %d gave %s (seen %v)", i, addr, seen)
			}
			seen[addr] = true
		}
		if _, err := a.Allocate("uid-x", "ns/x", netip.Addr{}); err == nil {
			t.Fatal("allocation from a full range succeeded")
		}
		a.Release("uid-2")
		if _, err := a.Allocate("uid-x", "ns/x", netip.Addr{}); err != nil {
			t.Fatalf("allocation after a release: %v", err)
		}
	})
	t.Run("prefer in use not taken", func(t *testing.T) {
		a := mustNew("127.1.0.0/16")
		x, _ := a.Allocate("uid-1", "ns/a", netip.Addr{})
		if y, _ := a.Allocate("uid-2", "ns/b", x); y == x {
			t.Fatalf("address %s handed out twice", x)
		}
	})
	t.Run("bad prefixes", func(t *testing.T) {
		for _, p := range []string{"127.0.0.0/31", "::1/128"} {
			if _, err := New(netip.MustParsePrefix(p)); err == nil {
				t.Errorf("New(%s) succeeded, want an error", p)
			}
		}
	})
}
