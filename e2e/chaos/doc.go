// Package chaos holds the pure parts of the chaos soak (e2e/cmd/chaos,
// make chaos): the seeded fault schedule, the workload's workflow specs
// with the outcome each must reach, and the invariant checkers that judge
// a run from what was recorded. Nothing here starts a process, reads a
// clock or talks to a cluster: the command is the shell that does, and
// feeds these functions what it saw.
package chaos
