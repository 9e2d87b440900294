package container

import "sort"

// envSet is an ordered set of variables: a name keeps the position of its
// first definition and the value of its last, as in a kubelet.
type envSet struct {
	names  []string
	values map[string]string
}

func newEnvSet() *envSet { return &envSet{values: map[string]string{}} }

func (e *envSet) set(name, value string) {
	if _, ok := e.values[name]; !ok {
		e.names = append(e.names, name)
	}
	e.values[name] = value
}

func (e *envSet) list() []Var {
	out := make([]Var, len(e.names))
	for i, n := range e.names {
		out[i] = Var{Name: n, Value: e.values[n]}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
