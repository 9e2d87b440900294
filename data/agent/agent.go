// Package agent moves a task's data between the object store and the
// pod's /rotor directory, so the task's container needs no SDK: it reads
// /rotor/inputs/<name> and writes /rotor/outputs/<name>. It is the core
// of the rotor-data binary, which runs it as the pod's init container
// (Download) and as its native sidecar (Upload, once the main container
// has exited); the store is injected.
//
// Failures are of two kinds (Error.System): the store failing (down,
// refusing, timing out) is the system's fault and the attempt is retried
// without spending the user's retries; a missing input object, a checksum
// mismatch, a missing or oversized output is the task's (or its inputs')
// and fails the node with a message naming the object. Nothing
// half-written is ever referenced: a file is downloaded to a temporary
// name and renamed, a directory's manifest is uploaded after its files,
// and references are reported only once every upload is complete.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/rotor-dev/rotor/data/ref"
	"github.com/rotor-dev/rotor/data/store"
)

// Spec is what Rotor tells the agent about one attempt (the env var
// ROTOR_DATA_SPEC of both containers).
type Spec struct {
	// Store is the raw-data location's URL (store.Config.URL).
	Store string `json:"store"`
	// Prefix is the attempt's prefix (ref.Attempt.Prefix): outputs go
	// under it.
	Prefix string `json:"prefix"`
	// Dir is the shared volume's mount path (default /rotor).
	Dir     string   `json:"dir,omitempty"`
	Inputs  []Input  `json:"inputs,omitempty"`
	Outputs []Output `json:"outputs,omitempty"`
	// MaxOutputBytes bounds each output (a directory: the sum of its
	// files); 0: no bound.
	MaxOutputBytes int64 `json:"maxOutputBytes,omitempty"`
}

// Input is one input to download.
type Input struct {
	Name string `json:"name"`
	// Kind is file, directory or value (an offloaded value, written as
	// a file holding its JSON).
	Kind ref.Kind `json:"kind"`
	Ref  ref.Ref  `json:"ref"`
}

// Output is one output to upload from Dir/outputs/Name.
type Output struct {
	Name string `json:"name"`
	// Kind is file, directory or value: a value's file holds its JSON,
	// reported inline up to ref.InlineLimit and offloaded above.
	Kind ref.Kind `json:"kind"`
	// Type, for a value, is its declared type (string, object or
	// array): the file's JSON must be of that kind, checked here because
	// nobody reads an offloaded value's bytes before its consumer does.
	Type string `json:"type,omitempty"`
	// Optional outputs may be absent: a value the task wrote in its
	// outputs JSON instead of as a file.
	Optional bool `json:"optional,omitempty"`
}

// Error is a failure with its kind: System for the store's, otherwise
// the task's.
type Error struct {
	System bool
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

func systemErr(format string, args ...any) error {
	return &Error{System: true, Msg: fmt.Sprintf(format, args...)}
}

func taskErr(format string, args ...any) error {
	return &Error{Msg: fmt.Sprintf(format, args...)}
}

// storeErr sorts a store error: a missing object is the task's (its
// input's) fault, anything else the store's.
func storeErr(err error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...) + ": " + err.Error()
	var mm *store.Mismatch
	if store.IsNotFound(err) || errors.As(err, &mm) {
		return &Error{Msg: msg}
	}
	return &Error{System: true, Msg: msg}
}

// Parallel is how many objects move at once.
const Parallel = 8

func (s *Spec) dir() string {
	if s.Dir == "" {
		return "/rotor"
	}
	return s.Dir
}

// Download fetches every input into Dir/inputs, verifying each against
// its reference.
func Download(ctx context.Context, st *store.Store, spec *Spec) error {
	in := filepath.Join(spec.dir(), "inputs")
	if err := os.MkdirAll(in, 0o777); err != nil {
		return systemErr("create %s: %v", in, err)
	}
	for _, i := range spec.Inputs {
		if err := checkName(i.Name); err != nil {
			return taskErr("input %q: %v", i.Name, err)
		}
		if err := i.Ref.Check(); err != nil {
			return taskErr("input %s: %v", i.Name, err)
		}
		dst := filepath.Join(in, i.Name)
		var err error
		if i.Kind == ref.KindDirectory {
			err = downloadDir(ctx, st, i, dst)
		} else {
			err = downloadFile(ctx, st, i.Ref, dst)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Fetch downloads what r names to dst, verified: a directory (its URI
// ends in "/") into the directory dst, a file to the file dst. What
// Download does for one input; rotor outputs --download uses it too.
func Fetch(ctx context.Context, st *store.Store, r ref.Ref, dst string) error {
	if err := r.Check(); err != nil {
		return taskErr("%v", err)
	}
	if r.IsDir() {
		return downloadDir(ctx, st, Input{Name: filepath.Base(dst), Kind: ref.KindDirectory, Ref: r}, dst)
	}
	return downloadFile(ctx, st, r, dst)
}

func downloadFile(ctx context.Context, st *store.Store, r ref.Ref, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o777); err != nil {
		return systemErr("create %s: %v", filepath.Dir(dst), err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".rotor-download-*")
	if err != nil {
		return systemErr("create a file beside %s: %v", dst, err)
	}
	defer os.Remove(tmp.Name())
	if err := st.Fetch(ctx, r, tmp); err != nil {
		tmp.Close()
		return storeErr(err, "download %s", r.URI)
	}
	if err := tmp.Close(); err != nil {
		return systemErr("write %s: %v", dst, err)
	}
	_ = os.Chmod(tmp.Name(), 0o644)
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return systemErr("move %s into place: %v", dst, err)
	}
	return nil
}

func downloadDir(ctx context.Context, st *store.Store, i Input, dst string) error {
	if !i.Ref.IsDir() {
		return taskErr("input %s is a directory but its reference %s is not one (it must end in /)", i.Name, i.Ref.URI)
	}
	rd, err := st.Get(ctx, i.Ref.URI+ref.ManifestName)
	if err != nil {
		return storeErr(err, "input %s: read the manifest of %s", i.Name, i.Ref.URI)
	}
	b, err := io.ReadAll(io.LimitReader(rd, 64<<20))
	rd.Close()
	if err != nil {
		return systemErr("input %s: read the manifest of %s: %v", i.Name, i.Ref.URI, err)
	}
	m, err := ref.DecodeManifest(b)
	if err != nil {
		return taskErr("input %s: %v", i.Name, err)
	}
	if m.Digest() != i.Ref.SHA256 {
		return taskErr("input %s: the manifest of %s has digest %s, its reference says %s: the directory was changed after it was written", i.Name, i.Ref.URI, m.Digest(), i.Ref.SHA256)
	}
	if err := os.MkdirAll(dst, 0o777); err != nil {
		return systemErr("create %s: %v", dst, err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(Parallel)
	for _, e := range m.Files {
		g.Go(func() error {
			r := ref.Ref{URI: i.Ref.URI + e.Path, Size: e.Size, SHA256: e.SHA256}
			return downloadFile(gctx, st, r, filepath.Join(dst, filepath.FromSlash(e.Path)))
		})
	}
	return g.Wait()
}

// Result is what Upload reports (the sidecar's termination message): each
// output's value, inline or a reference.
type Result struct {
	Outputs map[string]json.RawMessage `json:"outputs"`
}

// Upload stores every declared output found in Dir/outputs and returns
// their values: a file's and a directory's reference, a value inline or
// offloaded.
func Upload(ctx context.Context, st *store.Store, spec *Spec) (*Result, error) {
	res := &Result{Outputs: map[string]json.RawMessage{}}
	out := filepath.Join(spec.dir(), "outputs")
	for _, o := range spec.Outputs {
		if err := checkName(o.Name); err != nil {
			return nil, taskErr("output %q: %v", o.Name, err)
		}
		src := filepath.Join(out, o.Name)
		fi, err := os.Stat(src)
		if err != nil && o.Optional && errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, taskErr("output %s: the task did not write %s", o.Name, src)
		}
		uri, err := ref.Output(spec.Prefix, o.Name, o.Kind)
		if err != nil {
			return nil, taskErr("output %s: %v", o.Name, err)
		}
		var v any
		switch o.Kind {
		case ref.KindDirectory:
			if !fi.IsDir() {
				return nil, taskErr("output %s is a directory, but %s is a file", o.Name, src)
			}
			r, err := uploadDir(ctx, st, src, uri, spec.MaxOutputBytes, o.Name)
			if err != nil {
				return nil, err
			}
			v = r
		case ref.KindFile:
			if fi.IsDir() {
				return nil, taskErr("output %s is a file, but %s is a directory", o.Name, src)
			}
			if err := overLimit(o.Name, fi.Size(), spec.MaxOutputBytes); err != nil {
				return nil, err
			}
			r, err := uploadFile(ctx, st, src, uri)
			if err != nil {
				return nil, err
			}
			v = r
		case ref.KindValue:
			raw, err := valueOutput(ctx, st, src, uri, o, fi, spec.MaxOutputBytes)
			if err != nil {
				return nil, err
			}
			res.Outputs[o.Name] = raw
			continue
		default:
			return nil, taskErr("output %s: unknown kind %q", o.Name, o.Kind)
		}
		b, _ := json.Marshal(v)
		res.Outputs[o.Name] = b
	}
	return res, nil
}

func overLimit(name string, size, limit int64) error {
	if limit > 0 && size > limit {
		return taskErr("output %s is %d bytes, over the limit of %d (maxOutputBytes)", name, size, limit)
	}
	return nil
}

// valueOutput reads a value output's JSON and returns it inline, or
// offloaded as {"$ref": ...} when larger than ref.InlineLimit.
func valueOutput(ctx context.Context, st *store.Store, src, uri string, o Output, fi fs.FileInfo, limit int64) (json.RawMessage, error) {
	name := o.Name
	if err := checkKind(src, o); err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, taskErr("output %s is a value, but %s is a directory", name, src)
	}
	if err := overLimit(name, fi.Size(), limit); err != nil {
		return nil, err
	}
	if fi.Size() <= ref.InlineLimit {
		b, err := os.ReadFile(src)
		if err != nil {
			return nil, systemErr("read %s: %v", src, err)
		}
		b = []byte(strings.TrimSpace(string(b)))
		if !json.Valid(b) {
			return nil, taskErr("output %s: %s does not hold one JSON value", name, src)
		}
		if _, isRef, _ := ref.ParseOffloaded(b); isRef {
			return nil, taskErr(`output %s: a value shaped {"$ref": ...} is reserved for Rotor's references`, name)
		}
		return b, nil
	}
	if err := validJSONFile(src); err != nil {
		return nil, taskErr("output %s: %s does not hold one JSON value: %v", name, src, err)
	}
	r, err := uploadFile(ctx, st, src, uri)
	if err != nil {
		return nil, err
	}
	b, _ := json.Marshal(ref.Offloaded{Ref: r})
	return b, nil
}

// checkKind checks that a value file's JSON is of its declared type, by
// its first byte that is not a space.
func checkKind(src string, o Output) error {
	want := map[string]byte{"string": '"', "object": '{', "array": '['}[o.Type]
	if want == 0 {
		return nil
	}
	f, err := os.Open(src)
	if err != nil {
		return nil // the caller reports what is wrong with the file
	}
	defer f.Close()
	buf := make([]byte, 512)
	for {
		n, err := f.Read(buf)
		for _, c := range buf[:n] {
			switch c {
			case ' ', '\t', '\n', '\r':
				continue
			case want:
				return nil
			}
			return taskErr("output %s is declared %s, but %s does not hold one (it starts with %q)", o.Name, o.Type, src, c)
		}
		if err != nil {
			return taskErr("output %s: %s is empty; it must hold one JSON %s", o.Name, src, o.Type)
		}
	}
}

func validJSONFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	var v json.RawMessage
	if err := dec.Decode(&v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more than one value")
	}
	return nil
}

// Put stores the file or directory at src as one object (a file) or
// under the prefix uri (a directory, uri ending in "/"), as the upload
// sidecar does an output, and returns its reference: rotor submit
// --input name=@path uses it.
func Put(ctx context.Context, st *store.Store, src, uri string) (ref.Ref, error) {
	fi, err := os.Stat(src)
	if err != nil {
		return ref.Ref{}, taskErr("%v", err)
	}
	if fi.IsDir() {
		if !strings.HasSuffix(uri, "/") {
			uri += "/"
		}
		return uploadDir(ctx, st, src, uri, 0, filepath.Base(src))
	}
	return uploadFile(ctx, st, src, uri)
}

func uploadFile(ctx context.Context, st *store.Store, src, uri string) (ref.Ref, error) {
	f, err := os.Open(src)
	if err != nil {
		return ref.Ref{}, systemErr("open %s: %v", src, err)
	}
	defer f.Close()
	r, err := st.Put(ctx, uri, f)
	if err != nil {
		return ref.Ref{}, storeErr(err, "upload %s", src)
	}
	return r, nil
}

// uploadDir uploads every regular file under src (symbolic links are
// refused: they could point anywhere on the node), then the manifest.
func uploadDir(ctx context.Context, st *store.Store, src, uri string, limit int64, name string) (ref.Ref, error) {
	var files []string
	var total int64
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return nil
		case !d.Type().IsRegular():
			return fmt.Errorf("%s is not a regular file (links and devices are not uploaded)", p)
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		total += fi.Size()
		files = append(files, p)
		return nil
	})
	if err != nil {
		return ref.Ref{}, taskErr("output %s: %v", name, err)
	}
	if err := overLimit(name, total, limit); err != nil {
		return ref.Ref{}, err
	}
	var mu sync.Mutex
	entries := make([]ref.Entry, 0, len(files))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(Parallel)
	for _, p := range files {
		g.Go(func() error {
			rel, _ := filepath.Rel(src, p)
			rel = filepath.ToSlash(rel)
			r, err := uploadFile(gctx, st, p, uri+rel)
			if err != nil {
				return err
			}
			mu.Lock()
			entries = append(entries, ref.Entry{Path: rel, Size: r.Size, SHA256: r.SHA256})
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return ref.Ref{}, err
	}
	m, err := ref.NewManifest(entries)
	if err != nil {
		return ref.Ref{}, taskErr("output %s: %v", name, err)
	}
	if _, err := st.Put(ctx, uri+ref.ManifestName, strings.NewReader(string(m.Encode()))); err != nil {
		return ref.Ref{}, storeErr(err, "upload the manifest of %s", uri)
	}
	return m.Ref(uri), nil
}

func checkName(n string) error {
	if n == "" || n == "." || n == ".." || strings.ContainsAny(n, "/\\\x00") {
		return errors.New("not a plain name")
	}
	return nil
}
