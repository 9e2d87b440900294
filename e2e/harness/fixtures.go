package harness

import "strings"

// CyclicWorkflow is a Workflow named name whose nodes a and b depend on
// each other: what every validation layer must refuse, naming the cycle
// "a -> b -> a".
func CyclicWorkflow(name string) string {
	return strings.Replace(`apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: NAME}
spec:
  tasks:
    t: {container: {image: busybox}}
  nodes:
  - {name: a, task: t, dependsOn: [b]}
  - {name: b, task: t, dependsOn: [a]}
`, "NAME", name, 1)
}
