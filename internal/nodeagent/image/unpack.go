package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/rotor-dev/rotor/internal/nodeagent/rootpath"
)

// OCI whiteouts: a ".wh.<name>" entry deletes <name> of lower layers; a
// ".wh..wh..opq" entry in a directory hides everything lower layers put
// there.
const (
	whiteoutPrefix = ".wh."
	opaqueWhiteout = ".wh..wh..opq"
)

// UnpackLayer applies one uncompressed layer tar on top of root, which
// holds the layers below it. Entries are placed with symlinks in their
// parents resolved inside root, so no entry can write outside it; an entry
// whose name climbs out of the root ("../x") fails the layer. Device nodes
// are skipped (the container gets a minimal /dev mounted instead).
func UnpackLayer(root string, r io.Reader) error {
	tr := tar.NewReader(r)
	created := map[string]bool{}
	var opaque []string
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read layer: %w", err)
		}
		rel, err := cleanName(hdr.Name)
		if err != nil {
			return err
		}
		dir, base := path.Split(rel)
		switch {
		case base == opaqueWhiteout:
			opaque = append(opaque, path.Clean(dir))
		case strings.HasPrefix(base, whiteoutPrefix):
			if err := remove(root, path.Join(dir, strings.TrimPrefix(base, whiteoutPrefix))); err != nil {
				return err
			}
		default:
			created[rel] = true
			if err := writeEntry(root, rel, hdr, tr); err != nil {
				return fmt.Errorf("unpack %s: %w", hdr.Name, err)
			}
		}
	}
	for _, dir := range opaque {
		if err := clearLower(root, dir, created); err != nil {
			return err
		}
	}
	return nil
}

// cleanName turns a tar entry name into a clean path relative to the
// root, refusing one that climbs out of it.
func cleanName(name string) (string, error) {
	p := path.Clean(strings.TrimLeft(name, "/"))
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", fmt.Errorf("layer entry %q escapes the image root: refusing the image", name)
	}
	return p, nil
}

func remove(root, rel string) error {
	target, err := rootpath.ResolveParent(root, rel)
	if err != nil {
		return err
	}
	return os.RemoveAll(target)
}

// clearLower removes what lower layers left in dir: every entry this layer
// did not create, keeping directories on the way to ones it did.
func clearLower(root, dir string, created map[string]bool) error {
	host, err := rootpath.Resolve(root, dir)
	if err != nil {
		return err
	}
	entries, err := os.ReadDir(host)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	for _, e := range entries {
		rel := path.Join(dir, e.Name())
		switch {
		case created[rel] && e.IsDir():
			if err := clearLower(root, rel, created); err != nil {
				return err
			}
		case created[rel]:
		default:
			if err := os.RemoveAll(filepath.Join(host, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

func writeEntry(root, rel string, hdr *tar.Header, r io.Reader) error {
	target, err := rootpath.ResolveParent(root, rel)
	if err != nil {
		return err
	}
	if target != root {
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		err = makeDir(target)
	case tar.TypeReg: // the tar reader turns legacy TypeRegA into TypeReg or TypeDir
		err = writeFile(target, r)
	case tar.TypeSymlink:
		err = replace(target, func() error { return os.Symlink(hdr.Linkname, target) })
	case tar.TypeLink:
		err = hardLink(root, target, hdr.Linkname)
	default:
		return nil // devices, FIFOs: not needed in a root that gets its own /dev
	}
	if err != nil || target == root && hdr.Typeflag != tar.TypeDir {
		return err
	}
	return setMeta(target, hdr)
}

func makeDir(target string) error {
	if fi, err := os.Lstat(target); err == nil && fi.IsDir() {
		return nil // merged with the lower layers' directory
	}
	return replace(target, func() error { return os.Mkdir(target, 0o755) })
}

func writeFile(target string, r io.Reader) error {
	return replace(target, func() error {
		f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, r); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
}

func hardLink(root, target, linkname string) error {
	src, err := cleanName(linkname)
	if err != nil {
		return err
	}
	srcPath, err := rootpath.ResolveParent(root, src)
	if err != nil {
		return err
	}
	return replace(target, func() error { return os.Link(srcPath, target) })
}

// replace removes whatever a lower layer had at target, then creates.
func replace(target string, create func() error) error {
	if err := os.RemoveAll(target); err != nil {
		return err
	}
	return create()
}

func setMeta(target string, hdr *tar.Header) error {
	// Ownership matters (distroless's /home/nonroot belongs to 65532);
	// without root it cannot be set, and a rootless test still gets files.
	if err := os.Lchown(target, hdr.Uid, hdr.Gid); err != nil && !errors.Is(err, os.ErrPermission) {
		return err
	}
	if hdr.Typeflag == tar.TypeSymlink {
		return nil // a link's own mode means nothing on Linux
	}
	mode := hdr.FileInfo().Mode() & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky)
	return os.Chmod(target, mode)
}
