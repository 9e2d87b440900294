package main

import (
	"encoding/json"
	"math"
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
	r := Result{Cost: Cost{Runs: []CostRun{{Load: Load{Replicas: 2, OverP50ms: math.NaN(), OverP99ms: math.Inf(1)}, RotorMsPerNode: 4.5, MaxShare: 0.5}}}}
	b, err := json.Marshal(&r)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	var back struct {
		Cost struct {
			Runs []map[string]float64 `json:"runs"`
		} `json:"cost"`
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	run := back.Cost.Runs[0]
	if run["replicas"] != 2 || run["rotorCPUmsPerNode"] != 4.5 || run["maxShare"] != 0.5 || run["overheadP50ms"] != 0 || run["overheadP99ms"] != -1 {
		t.Fatalf("decoded %v", run)
	}
}
