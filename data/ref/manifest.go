package ref

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"
)

// ManifestName is the object beside a directory's files that lists them.
// It is written last: a directory whose manifest is missing was never
// finished, and nothing references it.
const ManifestName = ".rotor-manifest.json"

// Entry is one file of a directory.
type Entry struct {
	// Path is relative to the directory, with "/" separators.
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Manifest lists a directory's files, sorted by path.
type Manifest struct {
	Files []Entry `json:"files"`
}

// NewManifest sorts entries and checks them: relative clean paths, no
// duplicates, no file named like the manifest at the top, valid digests.
func NewManifest(entries []Entry) (Manifest, error) {
	files := slices.Clone(entries)
	slices.SortFunc(files, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
	for i, e := range files {
		if e.Path == "" || e.Path == "." || path.IsAbs(e.Path) || path.Clean(e.Path) != e.Path || e.Path == ".." || strings.HasPrefix(e.Path, "../") {
			return Manifest{}, fmt.Errorf("directory entry %q is not a clean relative path", e.Path)
		}
		if e.Path == ManifestName {
			return Manifest{}, fmt.Errorf("a directory may not hold a file named %s: Rotor writes its manifest there", ManifestName)
		}
		if i > 0 && files[i-1].Path == e.Path {
			return Manifest{}, fmt.Errorf("directory entry %q listed twice", e.Path)
		}
		if e.Size < 0 {
			return Manifest{}, fmt.Errorf("directory entry %q has a negative size", e.Path)
		}
		if b, err := hex.DecodeString(e.SHA256); err != nil || len(b) != sha256.Size {
			return Manifest{}, fmt.Errorf("directory entry %q: sha256 %q is not 64 hex digits", e.Path, e.SHA256)
		}
	}
	return Manifest{Files: files}, nil
}

// Encode is the manifest's canonical JSON: what Digest hashes and what is
// stored.
func (m Manifest) Encode() []byte {
	b, _ := json.Marshal(m) // plain strings and numbers: cannot fail
	return b
}

// Digest is the hex sha256 of Encode: a directory's content hash, equal
// for equal files whatever order they were found in.
func (m Manifest) Digest() string {
	sum := sha256.Sum256(m.Encode())
	return hex.EncodeToString(sum[:])
}

// Size is the sum of the files' sizes.
func (m Manifest) Size() int64 {
	var n int64
	for _, e := range m.Files {
		n += e.Size
	}
	return n
}

// Ref is the reference to the directory stored at uri (ending in "/").
func (m Manifest) Ref(uri string) Ref {
	if !strings.HasSuffix(uri, "/") {
		uri += "/"
	}
	return Ref{URI: uri, Size: m.Size(), SHA256: m.Digest(), Files: len(m.Files)}
}

// DecodeManifest parses and checks a stored manifest.
func DecodeManifest(b []byte) (Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return Manifest{}, fmt.Errorf("directory manifest: %w", err)
	}
	return NewManifest(m.Files)
}
