// Package localcluster starts real Kubernetes control planes on this
// machine, without containers: one etcd, a control cluster and N target
// clusters (each a kube-apiserver on its own etcd prefix, with a
// kube-scheduler and fake nodes run by kwok or by Rotor's process node
// agent). Both the e2e harness and `rotor dev` are built on it.
//
// Every component runs as a child process in its own process group, bound
// to 127.0.0.1 only, with its log in Dir/logs. Processes can be left running
// (Detach) and stopped later from the recorded state file.
package localcluster
