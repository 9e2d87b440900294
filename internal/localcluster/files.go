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

// targetAuditPolicy is a target's (Options.TargetAuditLog): every write,
// at Metadata level, which names the user and whom they impersonated.
const targetAuditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  verbs: [create, update, patch, delete]
- level: None
`

// chartAuditPolicy is the policy of a control cluster running Rotor's
// chart: every request of Rotor's ServiceAccounts (reads too, so a test
// can tell which granted permissions were used) and every write of
// anyone (so it can tell who else wrote), at Metadata level.
const chartAuditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  userGroups: ["system:serviceaccounts:rotor-system"]
- level: None
  nonResourceURLs: ["*"]
- level: Metadata
  verbs: [create, update, patch, delete, deletecollection]
- level: None
`

func writeAuditPolicy(path string, target, chart bool) error {
	if target {
		return writeFile(path, []byte(targetAuditPolicy))
	}
	if chart {
		return writeFile(path, []byte(chartAuditPolicy))
	}
	return writeFile(path, []byte(auditPolicy))
}
