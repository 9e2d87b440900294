package endpoints

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestEveryMetricIsDocumented: each rotor_ metric defined in the code is
// listed in docs/metrics.md, and the doc lists none the code lacks.
func TestEveryMetricIsDocumented(t *testing.T) {
	root := filepath.Join("..", "..")
	doc, err := os.ReadFile(filepath.Join(root, "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	// Name: in an Opts literal, or the first argument of NewDesc (a
	// collector's own metrics).
	defined := regexp.MustCompile(`(?:Name:\s*|NewDesc\(\s*)"(rotor_[a-z_]+)"`)
	inCode := map[string]bool{}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "bin" || d.Name() == ".rotor" || d.Name() == "e2e" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range defined.FindAllStringSubmatch(string(b), -1) {
			inCode[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(inCode) < 30 {
		t.Fatalf("found only %d metric definitions: the pattern no longer matches the code", len(inCode))
	}
	for name := range inCode {
		if !strings.Contains(string(doc), "`"+name+"`") {
			t.Errorf("metric %s is not documented in docs/metrics.md", name)
		}
	}
	for _, m := range regexp.MustCompile("`(rotor_[a-z_]+)`").FindAllStringSubmatch(string(doc), -1) {
		if !inCode[m[1]] {
			t.Errorf("docs/metrics.md lists %s, which no code defines", m[1])
		}
	}
}

// TestDashboardUsesRealMetrics: every panel of the Grafana dashboard
// queries metrics the code defines and is described in docs/dashboard.md.
func TestDashboardUsesRealMetrics(t *testing.T) {
	root := filepath.Join("..", "..")
	b, err := os.ReadFile(filepath.Join(root, "charts", "rotor", "dashboards", "rotor.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Type, Title, Description string
			Targets                  []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard is not JSON: %v", err)
	}
	metricsDoc, _ := os.ReadFile(filepath.Join(root, "docs", "metrics.md"))
	panelsDoc, err := os.ReadFile(filepath.Join(root, "docs", "dashboard.md"))
	if err != nil {
		t.Fatal(err)
	}
	name := regexp.MustCompile(`rotor_[a-z_]+`)
	graphs := 0
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		graphs++
		if p.Description == "" || len(p.Targets) == 0 {
			t.Errorf("panel %q has no description or no query", p.Title)
		}
		if !strings.Contains(string(panelsDoc), "**"+p.Title+"**") {
			t.Errorf("panel %q is not described in docs/dashboard.md", p.Title)
		}
		for _, tg := range p.Targets {
			for _, m := range name.FindAllString(tg.Expr, -1) {
				for _, suffix := range []string{"_bucket", "_count", "_sum"} {
					if base, ok := strings.CutSuffix(m, suffix); ok && strings.Contains(string(metricsDoc), "`"+base+"`") {
						m = base
					}
				}
				if !strings.Contains(string(metricsDoc), "`"+m+"`") {
					t.Errorf("panel %q queries %s, which is not a documented metric", p.Title, m)
				}
			}
		}
	}
	if graphs < 20 {
		t.Errorf("%d graph panels, want the rounds, queue, shards, clusters and failover panels", graphs)
	}
}
