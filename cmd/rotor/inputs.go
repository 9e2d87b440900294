package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/values"
	"github.com/rotor-dev/rotor/data/agent"
	"github.com/rotor-dev/rotor/data/ref"
	"github.com/rotor-dev/rotor/data/store"
)

// setInputs applies --input NAME=VALUE and NAME=@PATH to wf's declared
// inputs, uploading the files and directories of file and directory
// inputs (one store opened, one upload id for the submission).
func setInputs(ctx context.Context, g *globals, wf *v1alpha1.Workflow, args []string, sf storeFlags, out io.Writer) error {
	var st *store.Store
	defer func() {
		if st != nil {
			st.Close()
		}
	}()
	id := ""
	for _, a := range args {
		name, val, ok := strings.Cut(a, "=")
		if !ok || name == "" {
			return fmt.Errorf("--input %q: use NAME=VALUE or NAME=@PATH", a)
		}
		decl, ok := wf.Spec.Inputs[name]
		if !ok {
			return fmt.Errorf("--input %s: workflow %s declares no input %q (declared: %s)", name, wf.Name, name, strings.Join(slices.Sorted(maps.Keys(wf.Spec.Inputs)), ", "))
		}
		var raw json.RawMessage
		path, fromFile := strings.CutPrefix(val, "@")
		switch {
		case fromFile && decl.Type.IsData():
			fi, err := os.Stat(path)
			if err != nil {
				return fmt.Errorf("--input %s: %w", name, err)
			}
			if fi.IsDir() != (decl.Type == v1alpha1.TypeDirectory) {
				return fmt.Errorf("--input %s is a %s, but %s is %s", name, decl.Type, path, map[bool]string{true: "a directory", false: "a file"}[fi.IsDir()])
			}
			if st == nil {
				if st, err = sf.open(ctx, g, wf.Namespace); err != nil {
					return fmt.Errorf("--input %s: %w", name, err)
				}
				b := make([]byte, 8)
				_, _ = rand.Read(b)
				id = hex.EncodeToString(b)
			}
			uri, err := ref.Upload(st.Root(), wf.Namespace, id, name, fi.IsDir())
			if err != nil {
				return fmt.Errorf("--input %s: %w", name, err)
			}
			r, err := agent.Put(ctx, st, path, uri)
			if err != nil {
				return fmt.Errorf("--input %s: upload %s: %w", name, path, err)
			}
			fmt.Fprintf(out, "uploaded %s (%s) to %s\n", path, sizeOf(r), r.URI)
			raw, _ = json.Marshal(r)
		case fromFile:
			b, err := os.ReadFile(path)
			if err != nil {
				return fmt.Errorf("--input %s: %w", name, err)
			}
			raw = json.RawMessage(strings.TrimSpace(string(b)))
		default:
			raw = json.RawMessage(val)
			if !json.Valid(raw) || (decl.Type == v1alpha1.TypeString && values.Check(decl.Type, raw) != nil) {
				raw, _ = json.Marshal(val) // not JSON, or a string input: the text itself
			}
		}
		if err := values.Check(decl.Type, raw); err != nil {
			return fmt.Errorf("--input %s: %w", name, err)
		}
		decl.Value = &apiextensionsv1.JSON{Raw: raw}
		wf.Spec.Inputs[name] = decl
	}
	return nil
}
