package container

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Identity is who a container runs as.
type Identity struct {
	UID, GID uint32
	// Groups are the supplementary groups: the pod's supplementalGroups
	// and fsGroup.
	Groups []uint32
	// Home is the user's home in the image's /etc/passwd, or "/".
	Home string
}

// Users is an image's /etc/passwd and /etc/group.
type Users struct {
	byName map[string]passwdEntry
	byID   map[uint32]passwdEntry
	groups map[string]uint32
}

type passwdEntry struct {
	uid, gid uint32
	home     string
}

// ParseUsers reads the contents of an image's /etc/passwd and /etc/group;
// either may be empty (no such file) and bad lines are skipped, as libc
// does.
func ParseUsers(passwd, group []byte) *Users {
	u := &Users{byName: map[string]passwdEntry{}, byID: map[uint32]passwdEntry{}, groups: map[string]uint32{}}
	eachLine(passwd, func(f []string) {
		if len(f) < 6 {
			return
		}
		uid, err1 := strconv.ParseUint(f[2], 10, 32)
		gid, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 != nil || err2 != nil {
			return
		}
		e := passwdEntry{uid: uint32(uid), gid: uint32(gid), home: f[5]}
		u.byName[f[0]] = e
		if _, ok := u.byID[e.uid]; !ok {
			u.byID[e.uid] = e
		}
	})
	eachLine(group, func(f []string) {
		if len(f) < 3 {
			return
		}
		if gid, err := strconv.ParseUint(f[2], 10, 32); err == nil {
			u.groups[f[0]] = uint32(gid)
		}
	})
	return u
}

func eachLine(b []byte, fn func([]string)) {
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			fn(strings.Split(line, ":"))
		}
	}
}

// ConfigError is a problem with a container's configuration that a
// kubelet reports as CreateContainerConfigError.
type ConfigError struct{ Msg string }

func (e *ConfigError) Error() string { return e.Msg }

// ResolveIdentity applies the kubelet's and container runtime's rules:
// runAsUser/runAsGroup (container over pod) win over the image's User
// ("uid", "name", "uid:gid" or "name:group"); runAsNonRoot refuses uid 0
// and a user name it cannot check.
func ResolveIdentity(p *corev1.Pod, c *corev1.Container, imageUser string, users *Users) (Identity, error) {
	runAsUser, runAsGroup, nonRoot := securityIDs(p, c)
	userPart, groupPart, _ := strings.Cut(imageUser, ":")
	var id Identity
	switch {
	case runAsUser != nil:
		id.UID = uint32(*runAsUser)
	case userPart == "":
	default:
		uid, numeric, err := users.uid(userPart)
		if nonRoot && !numeric {
			return id, &ConfigError{fmt.Sprintf("container %s has runAsNonRoot and image has non-numeric user (%s), cannot verify user is non-root: set runAsUser", c.Name, userPart)}
		}
		if err != nil {
			return id, err
		}
		id.UID = uid
	}
	if nonRoot && id.UID == 0 {
		return id, &ConfigError{fmt.Sprintf("container %s has runAsNonRoot and image will run as root: set runAsUser to a non-zero uid", c.Name)}
	}
	gid, err := primaryGroup(id.UID, runAsUser != nil, runAsGroup, groupPart, users)
	if err != nil {
		return id, err
	}
	id.GID = gid
	id.Groups = supplementalGroups(p)
	id.Home = "/"
	if e, ok := users.byID[id.UID]; ok && e.home != "" {
		id.Home = e.home
	}
	return id, nil
}

func securityIDs(p *corev1.Pod, c *corev1.Container) (user, group *int64, nonRoot bool) {
	if ps := p.Spec.SecurityContext; ps != nil {
		user, group, nonRoot = ps.RunAsUser, ps.RunAsGroup, isTrue(ps.RunAsNonRoot)
	}
	if cs := c.SecurityContext; cs != nil {
		if cs.RunAsUser != nil {
			user = cs.RunAsUser
		}
		if cs.RunAsGroup != nil {
			group = cs.RunAsGroup
		}
		if cs.RunAsNonRoot != nil {
			nonRoot = *cs.RunAsNonRoot
		}
	}
	return user, group, nonRoot
}

func primaryGroup(uid uint32, uidFromPod bool, runAsGroup *int64, groupPart string, users *Users) (uint32, error) {
	switch {
	case runAsGroup != nil:
		return uint32(*runAsGroup), nil
	case groupPart != "" && !uidFromPod:
		if n, err := strconv.ParseUint(groupPart, 10, 32); err == nil {
			return uint32(n), nil
		}
		if g, ok := users.groups[groupPart]; ok {
			return g, nil
		}
		return 0, &ConfigError{fmt.Sprintf("image group %q is not in the image's /etc/group: use a numeric gid", groupPart)}
	}
	if e, ok := users.byID[uid]; ok {
		return e.gid, nil
	}
	return 0, nil
}

func supplementalGroups(p *corev1.Pod) []uint32 {
	ps := p.Spec.SecurityContext
	if ps == nil {
		return nil
	}
	var out []uint32
	for _, g := range ps.SupplementalGroups {
		out = append(out, uint32(g))
	}
	if ps.FSGroup != nil {
		out = append(out, uint32(*ps.FSGroup))
	}
	return out
}

func (u *Users) uid(name string) (uid uint32, numeric bool, err error) {
	if n, err := strconv.ParseUint(name, 10, 32); err == nil {
		return uint32(n), true, nil
	}
	if e, ok := u.byName[name]; ok {
		return e.uid, false, nil
	}
	return 0, false, &ConfigError{fmt.Sprintf("image user %q is not in the image's /etc/passwd: use a numeric uid", name)}
}
