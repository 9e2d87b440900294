package localcluster

import "os"

func writeFile(path string, data []byte) error { return os.WriteFile(path, data, 0o600) }

// The audit policy records who wrote Workflows and Pods, at Metadata level:
// enough to attribute every write to a replica, small enough to keep.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  verbs: [create, update, patch, delete]
  resources:
  - group: rotor.dev
    resources: [workflows, workflows/status]
- level: None
`

func writeAuditPolicy(path string) error { return writeFile(path, []byte(auditPolicy)) }
