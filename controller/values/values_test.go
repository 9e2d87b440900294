package values

import (
	"strings"
	"testing"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name    string
		typ     v1alpha1.ValueType
		raw     string
		wantErr string
	}{
		{"integer", v1alpha1.TypeInteger, `3`, ""},
		{"negative integer", v1alpha1.TypeInteger, `-42`, ""},
		{"integer written as float", v1alpha1.TypeInteger, `3.0`, ""},
		{"fraction is not integer", v1alpha1.TypeInteger, `3.5`, "want an integer, got 3.5"},
		{"string is not integer", v1alpha1.TypeInteger, `"3"`, `want an integer, got string "3"`},
		{"float", v1alpha1.TypeFloat, `2.5`, ""},
		{"float accepts integer", v1alpha1.TypeFloat, `2`, ""},
		{"bool", v1alpha1.TypeBoolean, `true`, ""},
		{"null is not bool", v1alpha1.TypeBoolean, `null`, "want a boolean, got null"},
		{"string", v1alpha1.TypeString, `"x"`, ""},
		{"object", v1alpha1.TypeObject, `{"a":1}`, ""},
		{"array is not object", v1alpha1.TypeObject, `[1]`, "want an object, got array [1]"},
		{"array", v1alpha1.TypeArray, `[1,"a"]`, ""},
		{"blob", v1alpha1.TypeBlob, `"s3://b/k"`, ""},
		{"empty blob", v1alpha1.TypeBlob, `""`, "want a blob URI string"},
		{"bad json", v1alpha1.TypeString, `{`, "not valid JSON"},
		{"two values", v1alpha1.TypeInteger, `1 2`, "not one JSON value"},
		{"unknown type", "decimal", `1`, `unknown type "decimal"`},
		{"offloaded string", v1alpha1.TypeString, `{"$ref":{"uri":"s3://b/v.json","size":5000,"sha256":"` + strings.Repeat("a", 64) + `"}}`, ""},
		{"offloaded array", v1alpha1.TypeArray, `{"$ref":{"uri":"s3://b/v.json","size":5000,"sha256":"` + strings.Repeat("a", 64) + `"}}`, ""},
		{"offloaded with a bad digest", v1alpha1.TypeObject, `{"$ref":{"uri":"s3://b/v.json","size":5000,"sha256":"x"}}`, "offloaded value: reference"},
		{"an integer is never offloaded", v1alpha1.TypeInteger, `{"$ref":{"uri":"s3://b/v.json","size":5000,"sha256":"` + strings.Repeat("a", 64) + `"}}`, "want an integer, got object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(tc.typ, []byte(tc.raw))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Check(%s, %s) = %v, want nil", tc.typ, tc.raw, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Check(%s, %s) = %v, want error containing %q", tc.typ, tc.raw, err, tc.wantErr)
			}
		})
	}
}

func TestText(t *testing.T) {
	for raw, want := range map[string]string{`"a b"`: "a b", `3`: "3", `{"a": 1}`: `{"a":1}`, `true`: "true"} {
		if got := Text([]byte(raw)); got != want {
			t.Errorf("Text(%s) = %q, want %q", raw, got, want)
		}
	}
}

func TestFileAndDirectoryValues(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	for _, c := range []struct {
		t    v1alpha1.ValueType
		raw  string
		good bool
	}{
		{v1alpha1.TypeFile, `{"uri": "s3://b/ns/wf/u/a/0/outputs/report", "size": 12, "sha256": "` + sum + `"}`, true},
		{v1alpha1.TypeDirectory, `{"uri": "s3://b/ns/wf/u/a/0/outputs/d/", "size": 12, "sha256": "` + sum + `", "files": 3}`, true},
		{v1alpha1.TypeFile, `{"uri": "s3://b/ns/wf/u/a/0/outputs/d/", "size": 12, "sha256": "` + sum + `"}`, false}, // a directory
		{v1alpha1.TypeDirectory, `{"uri": "s3://b/k", "size": 1, "sha256": "` + sum + `"}`, false},                  // a file
		{v1alpha1.TypeFile, `"s3://b/k"`, false},
		{v1alpha1.TypeFile, `{"uri": "s3://b/k", "size": 1}`, false},
		{v1alpha1.TypeFile, `{"uri": "s3://b/k", "size": 1, "sha256": "` + sum + `", "extra": 1}`, false},
	} {
		err := Check(c.t, []byte(c.raw))
		if (err == nil) != c.good {
			t.Errorf("Check(%s, %s) = %v, want good %v", c.t, c.raw, err, c.good)
		}
	}
}
