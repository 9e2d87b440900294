package etcdroles

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Perm is one permission as etcd stores it.
type Perm struct {
	Key, RangeEnd string
	Access        Access
}

// Diff is what makes a role hold exactly want's grants when it holds
// have: permissions to grant (missing, or of another access) and ranges
// to revoke (held but not wanted). Pure, so that re-running Apply on a
// role edited by hand is tested without an etcd.
func Diff(want Role, have []Perm) (grant []Perm, revoke []Perm) {
	wanted := map[[2]string]Access{}
	for _, g := range want.Grants {
		p := Perm{Key: g.Key, RangeEnd: g.RangeEnd(), Access: g.Access}
		wanted[[2]string{p.Key, p.RangeEnd}] = p.Access
		if !slices.Contains(have, p) {
			grant = append(grant, p)
		}
	}
	for _, p := range have {
		if _, ok := wanted[[2]string{p.Key, p.RangeEnd}]; !ok {
			revoke = append(revoke, p)
		}
	}
	return grant, revoke
}

// Options of Apply.
type Options struct {
	// EnableAuth makes sure user root exists with the root role and turns
	// etcd's auth on (a no-op when it is on). Before this, any client
	// with a certificate of etcd's CA may do anything.
	EnableAuth bool
}

// Apply makes etcd hold exactly roles: each role with exactly its grants,
// and a user of the same name (no password: it authenticates by client
// certificate) holding that role and no other. It returns one line per
// change made; none when etcd already held the plan. The client must be
// etcd's root (or auth still off).
func Apply(ctx context.Context, c *clientv3.Client, roles []Role, opts Options) ([]string, error) {
	var changes []string
	for _, r := range roles {
		ch, err := applyRole(ctx, c, r)
		changes = append(changes, ch...)
		if err != nil {
			return changes, fmt.Errorf("etcd role %s: %w (run with etcd's root client certificate)", r.Name, err)
		}
		ch, err = applyUser(ctx, c, r.Name, r.Name, true)
		changes = append(changes, ch...)
		if err != nil {
			return changes, fmt.Errorf("etcd user %s: %w (run with etcd's root client certificate)", r.Name, err)
		}
	}
	if !opts.EnableAuth {
		return changes, nil
	}
	// Root keeps any other role it has: it can do everything anyway, and
	// the platform's grants to it are not Rotor's to undo.
	ch, err := applyUser(ctx, c, Root, Root, false)
	changes = append(changes, ch...)
	if err != nil {
		return changes, fmt.Errorf("etcd user root: %w", err)
	}
	st, err := c.AuthStatus(ctx)
	if err != nil {
		return changes, fmt.Errorf("etcd auth status: %w", err)
	}
	if !st.Enabled {
		if _, err := c.AuthEnable(ctx); err != nil {
			return changes, fmt.Errorf("enable etcd auth: %w", err)
		}
		changes = append(changes, "enabled auth")
	}
	return changes, nil
}

func applyRole(ctx context.Context, c *clientv3.Client, r Role) ([]string, error) {
	var changes []string
	var have []Perm
	resp, err := c.RoleGet(ctx, r.Name)
	switch {
	case errors.Is(err, rpctypes.ErrRoleNotFound):
		if _, err := c.RoleAdd(ctx, r.Name); err != nil {
			return nil, err
		}
		changes = append(changes, "added role "+r.Name)
	case err != nil:
		return nil, err
	default:
		for _, p := range resp.Perm {
			have = append(have, Perm{Key: string(p.Key), RangeEnd: string(p.RangeEnd), Access: Access(p.PermType)})
		}
	}
	grant, revoke := Diff(r, have)
	for _, p := range revoke {
		if _, err := c.RoleRevokePermission(ctx, r.Name, p.Key, p.RangeEnd); err != nil {
			return changes, err
		}
		changes = append(changes, fmt.Sprintf("role %s: revoked %s on %s", r.Name, p.Access, describe(p)))
	}
	for _, p := range grant {
		if _, err := c.RoleGrantPermission(ctx, r.Name, p.Key, p.RangeEnd, clientv3.PermissionType(p.Access)); err != nil {
			return changes, err
		}
		changes = append(changes, fmt.Sprintf("role %s: granted %s on %s", r.Name, p.Access, describe(p)))
	}
	return changes, nil
}

// applyUser makes user exist and hold role, and (exclusive) no other.
func applyUser(ctx context.Context, c *clientv3.Client, user, role string, exclusive bool) ([]string, error) {
	var changes []string
	var held []string
	resp, err := c.UserGet(ctx, user)
	switch {
	case errors.Is(err, rpctypes.ErrUserNotFound):
		if _, err := c.UserAddWithOptions(ctx, user, "", &clientv3.UserAddOptions{NoPassword: true}); err != nil {
			return nil, err
		}
		changes = append(changes, "added user "+user)
	case err != nil:
		return nil, err
	default:
		held = resp.Roles
	}
	for _, h := range held {
		if exclusive && h != role {
			if _, err := c.UserRevokeRole(ctx, user, h); err != nil {
				return changes, err
			}
			changes = append(changes, fmt.Sprintf("user %s: revoked role %s", user, h))
		}
	}
	if !slices.Contains(held, role) {
		if _, err := c.UserGrantRole(ctx, user, role); err != nil {
			return changes, err
		}
		changes = append(changes, fmt.Sprintf("user %s: granted role %s", user, role))
	}
	return changes, nil
}

func describe(p Perm) string {
	if p.RangeEnd == "" {
		return p.Key
	}
	if p.RangeEnd == prefixEnd(p.Key) {
		return p.Key + "*"
	}
	return fmt.Sprintf("[%s, %s)", p.Key, p.RangeEnd)
}
