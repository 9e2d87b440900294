// Package v1alpha1 holds Rotor's API types in group rotor.dev, version
// v1alpha1: Workflow (one execution of a DAG of tasks) and Cluster (a target
// cluster that task pods are routed to).
//
// The field names of WorkflowSpec are a user-facing contract: they are what
// people write in YAML. Status types are written only by the engine.
//
// +kubebuilder:object:generate=true
// +groupName=rotor.dev
package v1alpha1
