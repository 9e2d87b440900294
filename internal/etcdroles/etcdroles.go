// Package etcdroles is the least-privilege etcd access of one Rotor
// installation: which keys the shard manager and the replicas may read
// and write, as etcd roles (Plan, pure), and how to make an etcd hold
// exactly those roles and their users (Apply, the thin shell).
//
// etcd maps a client certificate to the user named by its Common Name
// when it runs with --client-cert-auth and auth is enabled. Rotor's two
// components therefore get two certificates, CN rotor-manager and CN
// rotor-propeller, and two roles of the same names. The point of the
// split is the fencing protocol: only the leading manager may publish
// the shard map and the epochs in it, so a replica's certificate (in
// every propeller pod, next to tenants' task code paths) must not be
// able to write it, nor take the election, nor forge drain requests.
//
// Grants are by key prefix, which is what etcd offers: a replica may
// write any member's keys under members/ and released/, not only its
// own. A stolen replica certificate can therefore announce members that
// run nothing (their namespaces stall until the lease lapses) and forge
// a live owner's release acknowledgement, so that the leader hands the
// partition over before the owner stopped: until the owner sees the new
// map, two replicas may reconcile it, the newer one writing the higher
// epoch. Per-replica users would close both, at the price of one
// certificate per pod (security.md, "etcd").
package etcdroles

import (
	"fmt"
	"sort"
	"strings"

	"github.com/rotor-dev/rotor/shardproto"
)

// The users (certificate Common Names) and roles of the two components.
const (
	Manager   = "rotor-manager"
	Propeller = "rotor-propeller"
	// Root is etcd's built-in superuser role and the user that must hold
	// it before auth can be enabled. The apiservers use it (etcd's
	// Compact needs it) and so does whoever runs Apply.
	Root = "root"
)

// Layout is where one installation keeps its keys: the flags
// --shard-prefix, --cache-prefix and --call-journal-prefix.
type Layout struct {
	ShardPrefix string // no trailing slash, e.g. /rotor
	CachePrefix string // with a trailing slash, e.g. /rotor/cache/
	CallsPrefix string // with a trailing slash, e.g. /rotor/calls/
}

// DefaultLayout is the layout of the processes' default flags.
func DefaultLayout() Layout {
	return Layout{ShardPrefix: "/rotor", CachePrefix: "/rotor/cache/", CallsPrefix: "/rotor/calls/"}
}

// Access is what a grant allows; the values are etcd's (authpb).
type Access int

const (
	Read Access = iota
	Write
	ReadWrite
)

func (a Access) String() string {
	switch a {
	case Read:
		return "read"
	case Write:
		return "write"
	case ReadWrite:
		return "readwrite"
	}
	return fmt.Sprintf("Access(%d)", int(a))
}

func (a Access) reads() bool  { return a == Read || a == ReadWrite }
func (a Access) writes() bool { return a == Write || a == ReadWrite }

// Grant is one permission of a role: one key, or every key under a
// prefix.
type Grant struct {
	Key    string
	Prefix bool
	Access Access
	// For says what the component does there (shown by rotor etcd roles).
	For string
}

// RangeEnd is the grant's etcd range end: empty for one key, the first
// key past the prefix otherwise.
func (g Grant) RangeEnd() string {
	if !g.Prefix {
		return ""
	}
	return prefixEnd(g.Key)
}

// covers reports whether key is in the grant's range.
func (g Grant) covers(key string) bool {
	if g.Prefix {
		return strings.HasPrefix(key, g.Key)
	}
	return key == g.Key
}

// Role is an etcd role, and the user of the same name that holds it.
type Role struct {
	Name   string
	Grants []Grant
}

// Allows reports whether the role may read (write false) or write key.
func (r Role) Allows(key string, write bool) bool {
	for _, g := range r.Grants {
		if g.covers(key) && ((write && g.Access.writes()) || (!write && g.Access.reads())) {
			return true
		}
	}
	return false
}

// Plan returns the roles of the manager and the replicas for layout l.
// It refuses a layout in which a replica's grants would reach a key only
// the manager may write (a cache prefix of /rotor/ covers the shard
// map), naming the flag to change.
func Plan(l Layout) ([]Role, error) {
	if err := l.validate(); err != nil {
		return nil, err
	}
	k := shardproto.Keys{Prefix: l.ShardPrefix}
	manager := Role{Name: Manager, Grants: []Grant{
		{Key: k.Map(), Access: ReadWrite, For: "publish the shard map (leader only)"},
		{Key: k.Leader() + "/", Prefix: true, Access: ReadWrite, For: "the leader election"},
		{Key: k.Members(), Prefix: true, Access: Read, For: "watch the replicas' memberships"},
		{Key: k.Released(), Prefix: true, Access: ReadWrite, For: "watch release acknowledgements, delete consumed ones"},
		{Key: k.Drain(), Prefix: true, Access: ReadWrite, For: "drain requests of the admin API"},
		{Key: k.Capacity(), Prefix: true, Access: ReadWrite, For: "free the task-pod slots of replicas that went away"},
		{Key: l.CachePrefix, Prefix: true, Access: ReadWrite, For: "rotor cache ls|rm through the admin API"},
	}}
	propeller := Role{Name: Propeller, Grants: []Grant{
		{Key: k.Map(), Access: Read, For: "follow the shard map"},
		{Key: k.Members(), Prefix: true, Access: Write, For: "its membership, under its lease"},
		{Key: k.Released(), Prefix: true, Access: Write, For: "acknowledge releases, under its lease"},
		{Key: k.Capacity(), Prefix: true, Access: ReadWrite, For: "take and free task-pod slots"},
		{Key: l.CachePrefix, Prefix: true, Access: ReadWrite, For: "the task cache"},
		{Key: l.CallsPrefix, Prefix: true, Access: ReadWrite, For: "the http call journal"},
	}}
	// The fence: none of these may a replica write, whatever the layout.
	for _, key := range []string{k.Map(), k.Leader() + "/x", k.Drain() + "x"} {
		for _, g := range propeller.Grants {
			if g.Access.writes() && g.covers(key) {
				return nil, fmt.Errorf("the replicas' grant on %s (%s) would cover %s, which only the manager may write: choose a --cache-prefix and --call-journal-prefix outside it", g.Key, g.For, key)
			}
		}
	}
	return []Role{manager, propeller}, nil
}

func (l Layout) validate() error {
	switch {
	case l.ShardPrefix == "" || !strings.HasPrefix(l.ShardPrefix, "/") || strings.HasSuffix(l.ShardPrefix, "/"):
		return fmt.Errorf("shard prefix %q: want an absolute prefix without a trailing slash, such as /rotor", l.ShardPrefix)
	case !strings.HasPrefix(l.CachePrefix, "/") || !strings.HasSuffix(l.CachePrefix, "/"):
		return fmt.Errorf("cache prefix %q: want an absolute prefix ending in /, such as /rotor/cache/", l.CachePrefix)
	case !strings.HasPrefix(l.CallsPrefix, "/") || !strings.HasSuffix(l.CallsPrefix, "/"):
		return fmt.Errorf("call journal prefix %q: want an absolute prefix ending in /, such as /rotor/calls/", l.CallsPrefix)
	case strings.HasPrefix(l.CachePrefix, l.CallsPrefix) || strings.HasPrefix(l.CallsPrefix, l.CachePrefix):
		return fmt.Errorf("cache prefix %q and call journal prefix %q overlap: give each its own", l.CachePrefix, l.CallsPrefix)
	}
	return nil
}

// prefixEnd is clientv3.GetPrefixRangeEnd, kept here so the plan stays
// free of the client.
func prefixEnd(prefix string) string {
	end := []byte(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return string(end[:i+1])
		}
	}
	return "\x00" // every key
}

// Format renders roles as the table rotor etcd roles prints.
func Format(roles []Role) string {
	var b strings.Builder
	for _, r := range roles {
		fmt.Fprintf(&b, "role and user %s:\n", r.Name)
		gs := append([]Grant(nil), r.Grants...)
		sort.SliceStable(gs, func(i, j int) bool { return gs[i].Key < gs[j].Key })
		for _, g := range gs {
			what := g.Key
			if g.Prefix {
				what += "*"
			}
			fmt.Fprintf(&b, "  %-9s %-28s %s\n", g.Access, what, g.For)
		}
	}
	return b.String()
}
