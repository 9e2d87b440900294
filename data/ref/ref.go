// Package ref is the format of Rotor's references to data in the object
// store, and the scheme that says where an attempt's objects live. It is
// pure: no store is opened here.
//
// A value of type file or directory is a Ref in JSON; a string, object or
// array value too large to sit in a Workflow's status (InlineLimit) is
// offloaded and travels as {"$ref": Ref}. Either way the status holds the
// reference (URI, size, sha256), never the bytes, so its size stays
// bounded whatever the data's.
//
// Every object of an attempt lives under its own prefix,
//
//	<root>/<namespace>/<workflow>/<workflow UID>/<node path>/<attempt>/
//
// so a retried attempt writes beside the one before it, never over it,
// and a workflow created again under the same name starts afresh. A Ref
// an attempt reports must lie under that attempt's prefix (Within): a task
// cannot hand another tenant's objects to its downstream nodes.
package ref

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// InlineLimit is the largest JSON value kept inline in a status; larger
// string, object and array values are offloaded. It matches the 4 KiB a
// container's termination message can carry.
const InlineLimit = 4096

// Ref points at data Rotor stored: one object (a file, an offloaded
// value) or a prefix holding a directory's files and its manifest.
type Ref struct {
	// URI is the object's (a directory: its prefix's, ending in "/")
	// location: s3://bucket/key, gs://, azblob:// or file:///.
	URI string `json:"uri"`
	// Size is the object's length in bytes; a directory's is the sum of
	// its files'.
	Size int64 `json:"size"`
	// SHA256 is the hex digest of the object's bytes; a directory's is
	// the digest of its manifest (Manifest.Digest), so two directories
	// with the same files have the same digest.
	SHA256 string `json:"sha256"`
	// Files is how many files a directory holds (0 for an object).
	Files int `json:"files,omitempty"`
}

// Offloaded is the JSON shape of a string, object or array value stored
// as an object: {"$ref": {...}}. A value of exactly that shape cannot be
// passed inline (Check refuses it), so the two never mix.
type Offloaded struct {
	Ref Ref `json:"$ref"`
}

// Check validates a Ref's fields: a URI with a scheme and a path, a size
// that is not negative, a 64-digit hex digest, and for a directory a URI
// ending in "/".
func (r Ref) Check() error {
	u, err := url.Parse(r.URI)
	if err != nil || u.Scheme == "" || (u.Host == "" && u.Path == "") {
		return fmt.Errorf("reference URI %q is not a URI with a scheme (s3://bucket/key)", r.URI)
	}
	if r.Size < 0 {
		return fmt.Errorf("reference %s has a negative size %d", r.URI, r.Size)
	}
	if len(r.SHA256) != 64 {
		return fmt.Errorf("reference %s: sha256 %q is not 64 hex digits", r.URI, r.SHA256)
	}
	if _, err := hex.DecodeString(r.SHA256); err != nil {
		return fmt.Errorf("reference %s: sha256 %q is not hex", r.URI, r.SHA256)
	}
	if r.Files < 0 {
		return fmt.Errorf("reference %s has a negative file count %d", r.URI, r.Files)
	}
	if r.Files > 0 && !strings.HasSuffix(r.URI, "/") {
		return fmt.Errorf("directory reference %s must end in /", r.URI)
	}
	return nil
}

// IsDir reports whether r is a directory's prefix.
func (r Ref) IsDir() bool { return strings.HasSuffix(r.URI, "/") }

// ParseOffloaded returns the Ref of an offloaded value, and false for an
// inline one. A JSON object whose only key is "$ref" is taken for a
// reference; a malformed one is an error rather than an inline value.
func ParseOffloaded(raw json.RawMessage) (Ref, bool, error) {
	var probe map[string]json.RawMessage
	if json.Unmarshal(raw, &probe) != nil || len(probe) != 1 {
		return Ref{}, false, nil
	}
	inner, ok := probe["$ref"]
	if !ok {
		return Ref{}, false, nil
	}
	var r Ref
	if err := json.Unmarshal(inner, &r); err != nil {
		return Ref{}, true, fmt.Errorf("offloaded value: %w", err)
	}
	if err := r.Check(); err != nil {
		return Ref{}, true, fmt.Errorf("offloaded value: %w", err)
	}
	return r, true, nil
}

// Attempt names one attempt's place in the store.
type Attempt struct {
	Namespace, Workflow, WorkflowUID string
	// Node is the node's path as the engine writes it (sub/a, m/3); in
	// the store each "/" becomes "." (sub.a, m.3): node names hold no
	// dots, so the spelling is one to one, and a path stays one segment.
	Node    string
	Attempt int32
}

// nodeSegment is a node path's one segment in the store.
func nodeSegment(path string) string { return strings.ReplaceAll(path, "/", ".") }

// Prefix is the attempt's prefix under root (a URI such as
// s3://rotor-data/raw, with or without a trailing "/"): every object the
// attempt writes lies under it. It fails on a part that is empty or
// would escape its place ("..", "/").
func (a Attempt) Prefix(root string) (string, error) {
	parts := []string{a.Namespace, a.Workflow, a.WorkflowUID, nodeSegment(a.Node)}
	names := []string{"namespace", "workflow", "workflow UID", "node path"}
	for i, p := range parts {
		if err := segment(p); err != nil {
			return "", fmt.Errorf("%s %q: %w", names[i], p, err)
		}
	}
	if a.Attempt < 0 {
		return "", fmt.Errorf("attempt %d is negative", a.Attempt)
	}
	return Join(root, append(parts, strconv.Itoa(int(a.Attempt)))...) + "/", nil
}

// WorkflowPrefix is where every attempt of one workflow writes: what the
// retention sweeper deletes once the workflow is gone.
func WorkflowPrefix(root, namespace, workflow, uid string) (string, error) {
	for _, p := range []string{namespace, workflow, uid} {
		if err := segment(p); err != nil {
			return "", fmt.Errorf("%q: %w", p, err)
		}
	}
	return Join(root, namespace, workflow, uid) + "/", nil
}

// Uploads is the segment, where a workflow's name would be, under which
// rotor submit --input name=@path stores local files: no workflow is
// named so ("_" is not allowed in Kubernetes names).
const Uploads = "_uploads"

// Upload is where rotor submit stores a local file or directory for one
// submission (id: a fresh random name): <root>/<namespace>/_uploads/<id>/<name>,
// a directory's ending in "/". It lies in the namespace's own part of
// the store, so the propeller lets that namespace's tasks read it.
func Upload(root, namespace, id, name string, dir bool) (string, error) {
	for _, p := range []string{namespace, id, name} {
		if err := segment(p); err != nil {
			return "", fmt.Errorf("%q: %w", p, err)
		}
	}
	u := Join(root, namespace, Uploads, id, name)
	if dir {
		u += "/"
	}
	return u, nil
}

// Output is the URI of an output named name under an attempt's prefix;
// a directory's (dir true) ends in "/". Offloaded values are stored as
// name.json, files under their output's name.
func Output(prefix, name string, kind Kind) (string, error) {
	if err := segment(name); err != nil {
		return "", fmt.Errorf("output name %q: %w", name, err)
	}
	switch kind {
	case KindFile:
		return Join(prefix, "outputs", name), nil
	case KindDirectory:
		return Join(prefix, "outputs", name) + "/", nil
	case KindValue:
		return Join(prefix, "outputs", name+".json"), nil
	}
	return "", fmt.Errorf("unknown kind %q", kind)
}

// Value is the URI of a value Rotor itself offloads under a prefix (an
// input it rendered, a map's gathered outputs, a workflow's outputs):
// named by its digest, so writing it again, as a round redone after a
// lost status write does, writes the same bytes to the same object.
func Value(prefix, name, sha256 string) (string, error) {
	if err := segment(name); err != nil {
		return "", fmt.Errorf("value name %q: %w", name, err)
	}
	if len(sha256) < 16 {
		return "", fmt.Errorf("value %s: digest %q too short", name, sha256)
	}
	return Join(prefix, "values", name+"-"+sha256[:16]+".json"), nil
}

// Kind is what an output's object holds.
type Kind string

const (
	KindFile      Kind = "file"
	KindDirectory Kind = "directory"
	KindValue     Kind = "value"
)

// Within reports whether uri lies strictly under prefix (a directory's
// URI: "/" is added if missing). A URI with an empty, "." or ".." path
// segment, or a query, is refused rather than reasoned about, so no
// spelling climbs out of the prefix.
func Within(uri, prefix string) bool {
	u, err := url.Parse(uri)
	if err != nil || u.RawQuery != "" || u.Fragment != "" {
		return false
	}
	p, err := url.Parse(prefix)
	if err != nil || u.Scheme != p.Scheme || u.Host != p.Host {
		return false
	}
	segs := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	for i, s := range segs {
		last := i == len(segs)-1
		if s == "." || s == ".." || (s == "" && !last) {
			return false
		}
	}
	want := strings.TrimRight(p.Path, "/") + "/"
	return strings.HasPrefix(u.Path, want) && len(u.Path) > len(want)
}

// Join appends path parts to a root URI with single slashes.
func Join(root string, parts ...string) string {
	out := strings.TrimRight(root, "/")
	for _, p := range parts {
		out += "/" + strings.Trim(p, "/")
	}
	return out
}

// segment checks one path part of the scheme.
func segment(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("empty")
	case s == "." || s == "..":
		return fmt.Errorf("not a name")
	case strings.ContainsAny(s, "/\\?#\x00"):
		return fmt.Errorf("holds one of / \\ ? # or NUL")
	}
	return nil
}
