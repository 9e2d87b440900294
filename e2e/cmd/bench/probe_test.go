package main

import (
	"encoding/json"
	"math"
	"runtime"
	"testing"
)

func TestHistQuantile(t *testing.T) {
	// Buckets ≤1: 10, ≤2: 30, ≤4: 40 (cumulative), 40 samples.
	h := hist{bounds: []float64{1, 2, 4}, cum: []float64{10, 30, 40}, count: 40}
	for _, c := range []struct{ q, want float64 }{
		{0.25, 1},   // rank 10: the top of the first bucket
		{0.5, 1.5},  // rank 20: halfway through (1, 2]
		{0.875, 3},  // rank 35: halfway through (2, 4]
		{0.125, .5}, // rank 5: halfway through (0, 1]
	} {
		if got := h.quantile(c.q); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("quantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
	if !math.IsNaN((hist{}).quantile(0.5)) {
		t.Error("an empty histogram has no quantile")
	}
	over := hist{bounds: []float64{1}, cum: []float64{1}, count: 2} // one sample beyond the last bound
	if !math.IsInf(over.quantile(0.99), 1) {
		t.Error("a rank past the last bucket must not read as its bound")
	}
}

func TestHistSince(t *testing.T) {
	before := hist{bounds: []float64{1, 2}, cum: []float64{5, 8}, count: 8, sum: 9}
	after := hist{bounds: []float64{1, 2}, cum: []float64{5, 18}, count: 18, sum: 24}
	d := after.since(before)
	if d.count != 10 || d.sum != 15 || d.cum[0] != 0 || d.cum[1] != 10 {
		t.Fatalf("since = %+v", d)
	}
	if got := d.quantile(0.5); math.Abs(got-1.5) > 1e-9 {
		t.Errorf("p50 of the samples between = %v, want 1.5", got)
	}
}

// TestResultsEncode: a run whose quantiles have no samples or fall past
// the last bucket still encodes (JSON has no NaN or +Inf), and a cost
// run keeps both its load's fields and its own.
func TestResultsEncode(t *testing.T) {
	r := Result{Cost: Cost{Runs: []CostRun{{Load: Load{Replicas: 2, OverP50ms: math.NaN(), OverP99ms: math.Inf(1)}, Gross: cpuSplit{Rotor: 4.5}, MaxShare: 0.5}}}}
	b, err := json.Marshal(&r)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	var back struct {
		Cost struct {
			Runs []map[string]any `json:"runs"`
		} `json:"cost"`
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	run := back.Cost.Runs[0]
	gross, _ := run["grossCPUmsPerNode"].(map[string]any)
	if run["replicas"] != 2.0 || gross["rotor"] != 4.5 || run["maxShare"] != 0.5 || run["overheadP50ms"] != 0.0 || run["overheadP99ms"] != -1.0 {
		t.Fatalf("decoded %v", run)
	}
}

// TestCostNetOfIdle: net CPU per node takes off each part's idle rate
// over the run's wall time; gross does not.
func TestCostNetOfIdle(t *testing.T) {
	l := Load{Succeeded: 100, CPUAvailable: 10 * float64(runtime.NumCPU()), // 10 s of wall time, 500 nodes
		CPU: map[string]float64{"rotor-propeller-0": 1.5, "rotor-manager-0": 0.5, "kube-apiserver-control": 4, "kube-apiserver-target-1": 3, "etcd": 1, "kwok-target-1": 9}}
	r := costOf(l, cpuSplit{Rotor: 0.01, Control: 0.1, Target: 0.05, Etcd: 0})
	want := func(name string, got, w float64) {
		t.Helper()
		if math.Abs(got-w) > 1e-9 {
			t.Errorf("%s = %v, want %v", name, got, w)
		}
	}
	want("gross Rotor", r.Gross.Rotor, 4)   // 2 s / 500 nodes
	want("net Rotor", r.Net.Rotor, 3.8)     // (2 − 0.01 × 10) s / 500
	want("net control", r.Net.Control, 6)   // (4 − 1) / 500
	want("net target", r.Net.Target, 5)     // (3 − 0.5) / 500
	want("net etcd", r.Net.Etcd, 2)         // nothing idle
	want("gross target", r.Gross.Target, 6) // kwok counts in no part
}
