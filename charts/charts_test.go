// Package charts holds no code: its tests keep the Helm charts' documentation
// in step with the charts. The reference table of docs/install.md must list
// exactly the leaf values of charts/rotor/values.schema.json, with the
// defaults of charts/rotor/values.yaml; the PrometheusRule's metrics must be
// documented in docs/metrics.md and its runbook links must land on sections
// of docs/runbooks.md.
package charts

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// leaf is one documented value: a path such as "propeller.http.timeout" or
// "targets[].name".
type leaf struct {
	path string
	// inList: under a list ("targets[]."), so values.yaml has no default.
	inList bool
}

type schema struct {
	Ref        string             `json:"$ref"`
	Type       any                `json:"type"`
	Properties map[string]*schema `json:"properties"`
	Items      *schema            `json:"items"`
	Defs       map[string]*schema `json:"$defs"`
}

// leaves flattens the schema into the value paths the reference documents.
// A $ref to a definition named k8s* (a Kubernetes object passed through),
// stringMap or duration is one value; other definitions are walked into. A
// list is one value unless its items are a named definition (targets), whose
// fields are then documented as "list[].field".
func leaves(t *testing.T, root *schema) []leaf {
	t.Helper()
	var out []leaf
	var walk func(props map[string]*schema, prefix string, inList bool)
	walk = func(props map[string]*schema, prefix string, inList bool) {
		for name, s := range props {
			path := prefix + name
			if ref, def := resolve(t, root, s); ref != "" && opaque(ref) {
				out = append(out, leaf{path, inList})
				continue
			} else {
				s = def
			}
			switch {
			case len(s.Properties) > 0:
				walk(s.Properties, path+".", inList)
			case s.Items != nil && s.Items.Ref != "":
				_, item := resolve(t, root, s.Items)
				walk(item.Properties, path+"[].", true)
			default:
				out = append(out, leaf{path, inList})
			}
		}
	}
	walk(root.Properties, "", false)
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out
}

func opaque(ref string) bool {
	return strings.HasPrefix(ref, "k8s") || ref == "stringMap" || ref == "duration"
}

// resolve follows a local $ref ("#/$defs/NAME") and returns NAME and the
// definition; without a $ref it returns "" and s.
func resolve(t *testing.T, root, s *schema) (string, *schema) {
	t.Helper()
	if s.Ref == "" {
		return "", s
	}
	name, ok := strings.CutPrefix(s.Ref, "#/$defs/")
	def := root.Defs[name]
	if !ok || def == nil {
		t.Fatalf("values.schema.json: $ref %q: want #/$defs/NAME of an existing definition", s.Ref)
	}
	return name, def
}

func readSchema(t *testing.T) *schema {
	t.Helper()
	data, err := os.ReadFile("rotor/values.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var s schema
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatalf("values.schema.json: %v", err)
	}
	return &s
}

func readValues(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile("rotor/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatalf("values.yaml: %v", err)
	}
	var v map[string]any
	if err := json.Unmarshal(js, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// row is one line of the reference table: its path and default cells.
type row struct{ path, def string }

// referenceRows reads the table under "## Values reference" in
// docs/install.md.
func referenceRows(t *testing.T) []row {
	t.Helper()
	data, err := os.ReadFile("../docs/install.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n## Values reference\n")
	if !ok {
		t.Fatal(`docs/install.md: no "## Values reference" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var rows []row
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		// An escaped pipe (in enum types) is not a cell boundary.
		cells := strings.Split(strings.ReplaceAll(line, `\|`, "\x00"), "|")
		if len(cells) != 6 {
			t.Errorf("docs/install.md: want 4 cells (path, type, default, meaning) in %q", line)
			continue
		}
		path := strings.Trim(strings.TrimSpace(cells[1]), "`")
		rows = append(rows, row{path: path, def: strings.TrimSpace(cells[3])})
	}
	if len(rows) == 0 {
		t.Fatal("docs/install.md: the values reference table has no rows")
	}
	return rows
}

// lookup returns the value at a dotted path of values.yaml.
func lookup(values map[string]any, path string) (any, bool) {
	var cur any = values
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// compact is how the table writes a default: compact JSON in backticks.
func compact(t *testing.T, v any) string {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return "`" + strings.TrimSpace(buf.String()) + "`"
}

func TestValuesReferenceMatchesSchema(t *testing.T) {
	want := leaves(t, readSchema(t))
	rows := referenceRows(t)
	values := readValues(t)
	documented := map[string]row{}
	for _, r := range rows {
		if _, dup := documented[r.path]; dup {
			t.Errorf("docs/install.md: %s is listed twice", r.path)
		}
		documented[r.path] = r
	}
	inSchema := map[string]bool{}
	for _, l := range want {
		inSchema[l.path] = true
		r, ok := documented[l.path]
		if !ok {
			t.Errorf("docs/install.md: the values reference lacks %s (in values.schema.json)", l.path)
			continue
		}
		if l.inList {
			if r.def != "—" {
				t.Errorf("docs/install.md: %s is a list item's field: its default cell should be —, got %s", l.path, r.def)
			}
			continue
		}
		v, ok := lookup(values, l.path)
		if !ok {
			t.Errorf("values.yaml: %s (in values.schema.json) has no default", l.path)
			continue
		}
		if got := compact(t, v); r.def != got {
			t.Errorf("docs/install.md: the default of %s is %s in values.yaml, the table says %s", l.path, got, r.def)
		}
	}
	for _, r := range rows {
		if !inSchema[r.path] {
			t.Errorf("docs/install.md: the values reference lists %s, which values.schema.json does not have", r.path)
		}
	}
}

// TestValuesHaveSchema walks values.yaml: every key must be a schema
// property (Helm enforces this at install; the test says it without helm).
func TestValuesHaveSchema(t *testing.T) {
	root := readSchema(t)
	var walk func(v map[string]any, s *schema, prefix string)
	walk = func(v map[string]any, s *schema, prefix string) {
		for k, val := range v {
			p, ok := s.Properties[k]
			if !ok {
				t.Errorf("values.yaml: %s%s is not in values.schema.json", prefix, k)
				continue
			}
			ref, def := resolve(t, root, p)
			if m, isMap := val.(map[string]any); isMap && !opaque(ref) && len(def.Properties) > 0 {
				walk(m, def, prefix+k+".")
			}
		}
	}
	walk(readValues(t), root, "")
}

var (
	metricRe   = regexp.MustCompile(`\brotor_[a-z_]+`)
	alertRe    = regexp.MustCompile(`(?m)^\s+- alert: (\w+)$`)
	runbookRe  = regexp.MustCompile(`runbook_url: \{\{ \$rb \}\}#([a-z0-9-]+)`)
	headingRe  = regexp.MustCompile(`(?m)^## (\S+)$`)
	histSuffix = regexp.MustCompile(`_(bucket|count|sum)$`)
)

// TestAlertsAreDocumented: every metric an alert uses is in docs/metrics.md,
// every alert has a runbook_url to its own section of docs/runbooks.md, and
// every section there is an alert.
func TestAlertsAreDocumented(t *testing.T) {
	rule, err := os.ReadFile("rotor/templates/prometheusrule.yaml")
	if err != nil {
		t.Fatal(err)
	}
	metricsDoc, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range metricRe.FindAllString(string(rule), -1) {
		name := histSuffix.ReplaceAllString(m, "")
		if !strings.Contains(string(metricsDoc), "`"+name+"`") {
			t.Errorf("prometheusrule.yaml uses %s, which docs/metrics.md does not document", m)
		}
	}
	runbooks, err := os.ReadFile("../docs/runbooks.md")
	if err != nil {
		t.Fatal(err)
	}
	var sections []string
	for _, m := range headingRe.FindAllStringSubmatch(string(runbooks), -1) {
		sections = append(sections, m[1])
	}
	alerts := alertRe.FindAllStringSubmatch(string(rule), -1)
	links := runbookRe.FindAllStringSubmatch(string(rule), -1)
	if len(alerts) == 0 || len(alerts) != len(links) {
		t.Fatalf("prometheusrule.yaml: %d alerts, %d runbook_urls: want one each", len(alerts), len(links))
	}
	var names []string
	for i, a := range alerts {
		names = append(names, a[1])
		if links[i][1] != strings.ToLower(a[1]) {
			t.Errorf("alert %s: runbook_url anchor #%s, want #%s", a[1], links[i][1], strings.ToLower(a[1]))
		}
		if !slices.Contains(sections, a[1]) {
			t.Errorf("alert %s: docs/runbooks.md has no section '## %s'", a[1], a[1])
		}
	}
	for _, s := range sections {
		if !slices.Contains(names, s) {
			t.Errorf("docs/runbooks.md: section %s is not an alert of prometheusrule.yaml", s)
		}
	}
}
