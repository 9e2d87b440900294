package v1alpha1

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
)

// EncodeNodes packs node statuses for WorkflowStatus.CompactedNodes:
// JSON (map keys sorted, so equal maps encode equally), gzip, base64.
func EncodeNodes(nodes map[string]NodeStatus) (string, error) {
	if len(nodes) == 0 {
		return "", nil
	}
	raw, err := json.Marshal(nodes)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if _, err := zw.Write(raw); err != nil {
		return "", err
	}
	if err := zw.Close(); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}

// DecodeNodes unpacks WorkflowStatus.CompactedNodes.
func DecodeNodes(s string) (map[string]NodeStatus, error) {
	if s == "" {
		return nil, nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("status.compactedNodes is not base64: %w", err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("status.compactedNodes is not gzip: %w", err)
	}
	raw, err := io.ReadAll(io.LimitReader(zr, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("status.compactedNodes: %w", err)
	}
	nodes := map[string]NodeStatus{}
	if err := json.Unmarshal(raw, &nodes); err != nil {
		return nil, fmt.Errorf("status.compactedNodes: %w", err)
	}
	return nodes, nil
}

// AllNodes returns every node status, the compacted ones merged in. The
// result is a new map; entries of Nodes win over compacted ones.
func (s *WorkflowStatus) AllNodes() (map[string]NodeStatus, error) {
	compacted, err := DecodeNodes(s.CompactedNodes)
	if err != nil {
		return nil, err
	}
	out := make(map[string]NodeStatus, len(s.Nodes)+len(compacted))
	for k, v := range compacted {
		out[k] = v
	}
	for k, v := range s.Nodes {
		out[k] = v
	}
	return out, nil
}
