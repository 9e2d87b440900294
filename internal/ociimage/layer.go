package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Tar returns the uncompressed tar stream of files: entries sorted by path,
// missing parent directories added (0755, root), every header with ModTime
// epoch (truncated to seconds), numeric owners only and the USTAR format.
// It is a pure function of its arguments.
func Tar(files []File, epoch time.Time) ([]byte, error) {
	entries, err := normalize(files)
	if err != nil {
		return nil, err
	}
	mtime := epoch.UTC().Truncate(time.Second)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range entries {
		if err := tw.WriteHeader(header(f, mtime)); err != nil {
			return nil, fmt.Errorf("tar header of %s: %w", f.Path, err)
		}
		if _, err := tw.Write(f.Data); err != nil {
			return nil, fmt.Errorf("tar content of %s: %w", f.Path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// normalize validates files and returns them sorted with their implied
// parent directories. Sorting by path puts a directory before its content
// because a path sorts before every path it prefixes.
func normalize(files []File) ([]File, error) {
	byPath := make(map[string]File, len(files))
	for _, f := range files {
		if f.Path == "/" || !strings.HasPrefix(f.Path, "/") || path.Clean(f.Path) != f.Path {
			return nil, fmt.Errorf("file path %q: want a clean absolute path other than /, like /etc/passwd", f.Path)
		}
		if _, dup := byPath[f.Path]; dup {
			return nil, fmt.Errorf("file path %q listed twice: keep one entry per path", f.Path)
		}
		if f.Mode.IsDir() && f.Data != nil {
			return nil, fmt.Errorf("directory %q has data: leave Data nil for directories", f.Path)
		}
		byPath[f.Path] = f
	}
	for _, f := range files {
		for dir := path.Dir(f.Path); dir != "/"; dir = path.Dir(dir) {
			parent, ok := byPath[dir]
			if !ok {
				byPath[dir] = Dir(dir, 0o755, RootID, RootID)
			} else if !parent.Mode.IsDir() {
				return nil, fmt.Errorf("%q is a regular file but %q needs it as a directory", dir, f.Path)
			}
		}
	}
	out := make([]File, 0, len(byPath))
	for _, f := range byPath {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// header is the tar header of f. Uname and Gname stay empty: names would
// come from the build host's user database and are ignored by runtimes,
// which use the numeric IDs.
func header(f File, mtime time.Time) *tar.Header {
	h := &tar.Header{
		Name:    strings.TrimPrefix(f.Path, "/"),
		Mode:    int64(f.Mode.Perm()),
		Uid:     f.UID,
		Gid:     f.GID,
		ModTime: mtime,
		Format:  tar.FormatUSTAR,
	}
	if f.Mode&fs.ModeSticky != 0 {
		h.Mode |= 0o1000 // c_ISVTX
	}
	if f.Mode.IsDir() {
		h.Typeflag = tar.TypeDir
		h.Name += "/"
	} else {
		h.Typeflag = tar.TypeReg
		h.Size = int64(len(f.Data))
	}
	return h
}

// Gzip compresses data with an empty gzip header (no name, mtime 0) at
// gzip.DefaultCompression: for one Go version, the output depends on data only.
func Gzip(data []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(data); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// NewLayer returns the gzip-compressed OCI layer of files (see Tar). The
// layer keeps only the compressed bytes in memory.
func NewLayer(files []File, epoch time.Time) (v1.Layer, error) {
	raw, err := Tar(files, epoch)
	if err != nil {
		return nil, err
	}
	diffID, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	compressed, err := Gzip(raw)
	if err != nil {
		return nil, err
	}
	digest, _, err := v1.SHA256(bytes.NewReader(compressed))
	if err != nil {
		return nil, err
	}
	return &gzipLayer{compressed: compressed, digest: digest, diffID: diffID}, nil
}

// gzipLayer is an in-memory v1.Layer whose hashes were computed once at
// construction; it is immutable and safe for concurrent use.
type gzipLayer struct {
	compressed     []byte
	digest, diffID v1.Hash
}

var _ v1.Layer = (*gzipLayer)(nil)

func (l *gzipLayer) Digest() (v1.Hash, error) { return l.digest, nil }
func (l *gzipLayer) DiffID() (v1.Hash, error) { return l.diffID, nil }
func (l *gzipLayer) Size() (int64, error)     { return int64(len(l.compressed)), nil }

func (l *gzipLayer) MediaType() (types.MediaType, error) { return types.OCILayer, nil }

func (l *gzipLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.compressed)), nil
}

func (l *gzipLayer) Uncompressed() (io.ReadCloser, error) {
	return gzip.NewReader(bytes.NewReader(l.compressed))
}
