// Package rootpath resolves paths inside a directory that stands for a
// container's root filesystem, following symbolic links the way they would
// be followed after a chroot: an absolute link target and any ".." stop at
// the root, so a hostile or merely absolute link (distroless images link
// /var/run to /run) never leads outside it.
//
// The image unpacker uses it to place layer entries and the container
// helper to create mount points; both run as root, so following a link
// naively could overwrite the host's files.
package rootpath

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// maxLinks bounds symlink resolution the way the kernel's ELOOP does.
const maxLinks = 255

// Resolve returns the host path of p (a path inside the root, absolute or
// not) with every symlink resolved inside root. Components that do not
// exist yet are kept as written, so the result may name a path to create.
func Resolve(root, p string) (string, error) {
	rel, err := resolve(root, p)
	if err != nil {
		return "", err
	}
	return filepath.Join(root, rel), nil
}

// ResolveParent is Resolve for every component but the last, which is kept
// as is: the path at which an entry (file, link, dir) is to be replaced,
// never followed.
func ResolveParent(root, p string) (string, error) {
	clean := path.Clean("/" + p)
	if clean == "/" {
		return root, nil
	}
	dir, err := resolve(root, path.Dir(clean))
	if err != nil {
		return "", err
	}
	return filepath.Join(root, dir, path.Base(clean)), nil
}

// resolve walks p one component at a time; done is always a clean,
// link-free path relative to root.
func resolve(root, p string) (string, error) {
	done, todo, links := "", p, 0
	for todo != "" {
		var part string
		part, todo, _ = strings.Cut(todo, "/")
		switch part {
		case "", ".":
			continue
		case "..":
			done = parent(done)
			continue
		}
		next := path.Join(done, part)
		fi, err := os.Lstat(filepath.Join(root, next))
		if errors.Is(err, os.ErrNotExist) {
			done = next
			continue
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			done = next
			continue
		}
		if links++; links > maxLinks {
			return "", fmt.Errorf("resolve %s in %s: too many levels of symbolic links", p, root)
		}
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if path.IsAbs(target) {
			done = ""
		}
		todo = target + "/" + todo
	}
	return done, nil
}

func parent(p string) string {
	if p == "" {
		return ""
	}
	d := path.Dir(p)
	if d == "." {
		return ""
	}
	return d
}
