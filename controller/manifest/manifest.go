// Package manifest reads Rotor objects from YAML or JSON files.
//
// It parses YAML 1.2 (go.yaml.in/yaml/v3), not the YAML 1.1 that
// sigs.k8s.io/yaml and kubectl use: under 1.1 the keys y, n, yes, no, on and
// off are booleans, so the documented example `outputs: {y: integer}` would
// silently become {"true": "integer"}. Workflows name inputs and outputs
// like that all the time.
package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	yaml "go.yaml.in/yaml/v3"
)

// ToJSON converts every document of a YAML stream into JSON, skipping empty
// documents.
func ToJSON(data []byte) ([][]byte, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out [][]byte
	for i := 0; ; i++ {
		var doc any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("YAML document %d: %w", i+1, err)
		}
		if doc == nil {
			continue
		}
		norm, err := normalize(doc)
		if err != nil {
			return nil, fmt.Errorf("YAML document %d: %w", i+1, err)
		}
		b, err := json.Marshal(norm)
		if err != nil {
			return nil, fmt.Errorf("YAML document %d: %w", i+1, err)
		}
		out = append(out, b)
	}
}

// Unmarshal decodes a single YAML or JSON document into v, rejecting
// unknown fields so a misspelt field name is an error, not a no-op.
func Unmarshal(data []byte, v any) error {
	docs, err := ToJSON(data)
	if err != nil {
		return err
	}
	if len(docs) != 1 {
		return fmt.Errorf("want one document, found %d", len(docs))
	}
	dec := json.NewDecoder(bytes.NewReader(docs[0]))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func normalize(v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			n, err := normalize(e)
			if err != nil {
				return nil, err
			}
			x[k] = n
		}
		return x, nil
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("map key %v is not a string", k)
			}
			n, err := normalize(e)
			if err != nil {
				return nil, err
			}
			m[ks] = n
		}
		return m, nil
	case []any:
		for i, e := range x {
			n, err := normalize(e)
			if err != nil {
				return nil, err
			}
			x[i] = n
		}
		return x, nil
	}
	return v, nil
}
