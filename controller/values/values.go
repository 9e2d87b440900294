// Package values checks and converts Rotor's typed values. A value travels
// as JSON; its declared ValueType says which JSON shapes are allowed.
package values

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/data/ref"
)

// Check reports whether raw, a JSON document, is a valid value of type t.
// Integers must be whole numbers; a float accepts any JSON number; a blob
// is a non-empty URI string.
//
// A string, object or array may be offloaded ({"$ref": {uri, size,
// sha256}}, package data/ref): the reference is checked, the value it
// stands for is not read (the data agent checked its JSON kind when it
// stored it).
func Check(t v1alpha1.ValueType, raw []byte) error {
	if Offloadable(t) {
		if _, isRef, err := ref.ParseOffloaded(raw); isRef {
			return err
		}
	}
	v, err := decode(raw)
	if err != nil {
		return err
	}
	return checkValue(t, v)
}

func decode(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("not one JSON value")
	}
	return v, nil
}

func checkValue(t v1alpha1.ValueType, v any) error {
	switch t {
	case v1alpha1.TypeString:
		if _, ok := v.(string); !ok {
			return mismatch(t, v)
		}
	case v1alpha1.TypeBlob:
		if s, ok := v.(string); !ok || s == "" {
			return fmt.Errorf("want a blob URI string, got %s", describe(v))
		}
	case v1alpha1.TypeInteger:
		n, ok := v.(json.Number)
		if !ok {
			return mismatch(t, v)
		}
		if _, err := strconv.ParseInt(n.String(), 10, 64); err != nil {
			f, ferr := n.Float64()
			if ferr != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
				return fmt.Errorf("want an integer, got %s", n)
			}
		}
	case v1alpha1.TypeFloat:
		if _, ok := v.(json.Number); !ok {
			return mismatch(t, v)
		}
	case v1alpha1.TypeBoolean:
		if _, ok := v.(bool); !ok {
			return mismatch(t, v)
		}
	case v1alpha1.TypeObject:
		if _, ok := v.(map[string]any); !ok {
			return mismatch(t, v)
		}
	case v1alpha1.TypeArray:
		if _, ok := v.([]any); !ok {
			return mismatch(t, v)
		}
	case v1alpha1.TypeFile, v1alpha1.TypeDirectory:
		return checkRef(t, v)
	default:
		return fmt.Errorf("unknown type %q: use string, integer, float, boolean, object, array, blob, file or directory", t)
	}
	return nil
}

// Offloadable reports whether values of type t may be offloaded: the
// types whose values can grow (strings, objects and arrays).
func Offloadable(t v1alpha1.ValueType) bool {
	return t == v1alpha1.TypeString || t == v1alpha1.TypeObject || t == v1alpha1.TypeArray
}

// checkRef checks a file or directory value: a reference to data in
// Rotor's object store, a directory's ending in "/".
func checkRef(t v1alpha1.ValueType, v any) error {
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("want a %s reference {uri, size, sha256}, got %s", t, describe(v))
	}
	b, _ := json.Marshal(m)
	var r ref.Ref
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return fmt.Errorf("want a %s reference {uri, size, sha256}: %v", t, err)
	}
	if err := r.Check(); err != nil {
		return err
	}
	if r.IsDir() != (t == v1alpha1.TypeDirectory) {
		return fmt.Errorf("want a %s reference, got one to a %s (%s)", t, map[bool]string{true: "directory", false: "file"}[r.IsDir()], r.URI)
	}
	return nil
}

func mismatch(t v1alpha1.ValueType, v any) error {
	return fmt.Errorf("want %s, got %s", article(t), describe(v))
}

func article(t v1alpha1.ValueType) string {
	switch t {
	case v1alpha1.TypeInteger, v1alpha1.TypeObject, v1alpha1.TypeArray:
		return "an " + string(t)
	}
	return "a " + string(t)
}

func describe(v any) string {
	b, _ := json.Marshal(v)
	s := string(b)
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string " + s
	case json.Number:
		return "number " + s
	case bool:
		return "boolean " + s
	case map[string]any:
		return "object " + s
	case []any:
		return "array " + s
	}
	return s
}

// Text renders a value for use inside a string (templated args and env):
// strings without quotes, everything else as compact JSON.
func Text(raw []byte) string {
	v, err := decode(raw)
	if err != nil {
		return string(raw)
	}
	if s, ok := v.(string); ok {
		return s
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return string(raw)
	}
	return buf.String()
}

// Truthy reports a value's truth for branch conditions: false, 0, "", null,
// [] and {} are false.
func Truthy(raw []byte) bool {
	v, err := decode(raw)
	if err != nil {
		return false
	}
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case string:
		return x != ""
	case json.Number:
		f, _ := x.Float64()
		return f != 0
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	}
	return true
}
