package volume

import (
	"errors"
	"os"
	"path/filepath"
)

// Write puts files under dir, each by a rename of a temporary file next
// to it so a reader never sees half a file (the token is rewritten while
// the container runs). With gid set, files are given that group (the
// pod's fsGroup).
func Write(dir string, files []File, gid *int64) error {
	for _, f := range files {
		if err := writeOne(dir, f, gid); err != nil {
			return err
		}
	}
	return nil
}

func writeOne(dir string, f File, gid *int64) error {
	target := filepath.Join(dir, filepath.FromSlash(f.Path))
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(target), ".tmp-"+filepath.Base(target)+"-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename: a no-op
	if _, err := tmp.Write(f.Data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), f.Mode); err != nil {
		return err
	}
	if gid != nil {
		if err := os.Chown(tmp.Name(), -1, int(*gid)); err != nil && !errors.Is(err, os.ErrPermission) {
			return err
		}
	}
	return os.Rename(tmp.Name(), target)
}
