package etcdroles

import (
	"strings"
	"testing"
)

func roles(t *testing.T, l Layout) (manager, propeller Role) {
	t.Helper()
	rs, err := Plan(l)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].Name != Manager || rs[1].Name != Propeller {
		t.Fatalf("Plan returned %d roles %v, want rotor-manager and rotor-propeller", len(rs), rs)
	}
	return rs[0], rs[1]
}

func TestPlanFencesTheShardMap(t *testing.T) {
	m, p := roles(t, DefaultLayout())
	cases := []struct {
		role  Role
		key   string
		write bool
		want  bool
	}{
		// The fence: a replica follows the map, never writes it, and
		// cannot lead or ask for drains.
		{p, "/rotor/shardmap", false, true},
		{p, "/rotor/shardmap", true, false},
		{p, "/rotor/leader/694d9e1a", true, false},
		{p, "/rotor/leader/694d9e1a", false, false},
		{p, "/rotor/drain/rotor-propeller-1", true, false},
		// What a replica does write.
		{p, "/rotor/members/rotor-propeller-0", true, true},
		{p, "/rotor/released/rotor-propeller-0/17", true, true},
		{p, "/rotor/capacity/target-1/ns/pod", true, true},
		{p, "/rotor/capacity/target-1/ns/pod", false, true},
		{p, "/rotor/cache/entries/ns/task/v1/abc", true, true},
		{p, "/rotor/calls/ns/wf/key", true, true},
		{p, "/rotor/calls/ns/wf/key", false, true},
		// Nothing else under the prefix, nor outside it.
		{p, "/rotor/other", false, false},
		{p, "/rotor-control/pods/ns/x", false, false},
		// The manager leads, publishes, drains, and reads members.
		{m, "/rotor/shardmap", true, true},
		{m, "/rotor/leader/694d9e1a", true, true},
		{m, "/rotor/drain/rotor-propeller-1", true, true},
		{m, "/rotor/released/rotor-propeller-0/17", true, true},
		{m, "/rotor/members/rotor-propeller-0", false, true},
		{m, "/rotor/members/rotor-propeller-0", true, false},
		{m, "/rotor/cache/entries/ns/task/v1/abc", true, true},
		// The answers of tenants' http calls are none of its business.
		{m, "/rotor/calls/ns/wf/key", false, false},
		{m, "/rotor-control/pods/ns/x", false, false},
	}
	for _, c := range cases {
		if got := c.role.Allows(c.key, c.write); got != c.want {
			t.Errorf("%s may %s %s = %v, want %v", c.role.Name, map[bool]string{false: "read", true: "write"}[c.write], c.key, got, c.want)
		}
	}
}

func TestPlanFollowsTheLayout(t *testing.T) {
	_, p := roles(t, Layout{ShardPrefix: "/prod/rotor", CachePrefix: "/prod/cache/", CallsPrefix: "/prod/calls/"})
	if p.Allows("/rotor/members/x", true) || !p.Allows("/prod/rotor/members/x", true) || !p.Allows("/prod/cache/a", true) {
		t.Errorf("propeller grants do not follow the layout: %+v", p.Grants)
	}
	// A prefix sharing the shard prefix's first characters is not under it.
	if p.Allows("/prod/rotorx/members/x", true) {
		t.Error("grant on /prod/rotor/members/ covers /prod/rotorx/members/x")
	}
}

func TestPlanRefusesALayoutThatBreaksTheFence(t *testing.T) {
	cases := []struct {
		l    Layout
		want string
	}{
		{Layout{ShardPrefix: "/rotor", CachePrefix: "/rotor/", CallsPrefix: "/calls/"}, "would cover /rotor/shardmap"},
		{Layout{ShardPrefix: "/rotor", CachePrefix: "/cache/", CallsPrefix: "/rotor/drain/"}, "would cover /rotor/drain/x"},
		{Layout{ShardPrefix: "/rotor", CachePrefix: "/", CallsPrefix: "/calls/"}, "overlap"},
		{Layout{ShardPrefix: "/rotor/", CachePrefix: "/c/", CallsPrefix: "/d/"}, "without a trailing slash"},
		{Layout{ShardPrefix: "/rotor", CachePrefix: "/c", CallsPrefix: "/d/"}, "ending in /"},
		{Layout{ShardPrefix: "/rotor", CachePrefix: "/c/", CallsPrefix: "d/"}, "ending in /"},
		{Layout{ShardPrefix: "/rotor", CachePrefix: "/x/", CallsPrefix: "/x/calls/"}, "overlap"},
	}
	for _, c := range cases {
		_, err := Plan(c.l)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Plan(%+v) = %v, want an error containing %q", c.l, err, c.want)
		}
	}
}

func TestGrantRangeEnd(t *testing.T) {
	for _, c := range []struct {
		g    Grant
		want string
	}{
		{Grant{Key: "/rotor/members/", Prefix: true}, "/rotor/members0"},
		{Grant{Key: "/rotor/shardmap"}, ""},
		{Grant{Key: "a\xff", Prefix: true}, "b"},
		{Grant{Key: "\xff\xff", Prefix: true}, "\x00"},
	} {
		if got := c.g.RangeEnd(); got != c.want {
			t.Errorf("RangeEnd(%q) = %q, want %q", c.g.Key, got, c.want)
		}
	}
}

func TestDiff(t *testing.T) {
	_, p := roles(t, DefaultLayout())
	grant, revoke := Diff(p, nil)
	if len(grant) != len(p.Grants) || len(revoke) != 0 {
		t.Fatalf("from nothing: grant %d, revoke %d; want %d and 0", len(grant), len(revoke), len(p.Grants))
	}
	// Held: everything as planned, one grant widened by hand to
	// readwrite, and a stray grant on the shard map's writes.
	var have []Perm
	for _, g := range p.Grants {
		have = append(have, Perm{Key: g.Key, RangeEnd: g.RangeEnd(), Access: g.Access})
	}
	have[0].Access = ReadWrite // the shard map, planned read
	have = append(have, Perm{Key: "/rotor/", RangeEnd: "/rotor0", Access: ReadWrite})
	grant, revoke = Diff(p, have)
	if len(grant) != 1 || grant[0].Key != "/rotor/shardmap" || grant[0].Access != Read {
		t.Errorf("grant = %+v, want read on /rotor/shardmap only", grant)
	}
	if len(revoke) != 1 || revoke[0].Key != "/rotor/" {
		t.Errorf("revoke = %+v, want the stray /rotor/* only", revoke)
	}
	grant, revoke = Diff(p, have[:len(p.Grants)])
	if len(revoke) != 0 || len(grant) != 1 {
		t.Errorf("without the stray grant: grant %+v revoke %+v", grant, revoke)
	}
}
