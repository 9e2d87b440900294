package chart

import "testing"

// TestChart runs the steps in order on one installation: each builds on
// the state the one before left, and the audit of permissions comes last
// so that the upgrade and autoscaling have used theirs too.
func TestChart(t *testing.T) {
	for _, step := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"install", testInstall},
		{"upgrade", testUpgrade},
		{"autoscale", testAutoscale},
		{"rbac", testRBACLeastPrivilegeFromAudit},
	} {
		if !t.Run(step.name, step.run) {
			t.Fatalf("step %s failed; later steps need its state", step.name)
		}
	}
}
