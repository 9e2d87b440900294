package volume

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func i32(v int32) *int32 { return &v }

func TestProject(t *testing.T) {
	data := map[string][]byte{"b": []byte("2"), "a": []byte("1"), "ca.crt": []byte("pem")}
	for _, tc := range []struct {
		name     string
		items    []corev1.KeyToPath
		mode     *int32
		optional bool
		want     []File
		wantErr  string
	}{
		{"all keys sorted, default mode", nil, nil, false,
			[]File{{"a", []byte("1"), 0o644}, {"b", []byte("2"), 0o644}, {"ca.crt", []byte("pem"), 0o644}}, ""},
		{"defaultMode", nil, i32(0o400), false,
			[]File{{"a", []byte("1"), 0o400}, {"b", []byte("2"), 0o400}, {"ca.crt", []byte("pem"), 0o400}}, ""},
		{"items with paths and modes", []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}, {Key: "a", Path: "sub/dir/a.txt", Mode: i32(0o600)}}, i32(0o440), false,
			[]File{{"ca.crt", []byte("pem"), 0o440}, {"sub/dir/a.txt", []byte("1"), 0o600}}, ""},
		{"missing key", []corev1.KeyToPath{{Key: "nope", Path: "x"}}, nil, false, nil, `has no key "nope"`},
		{"missing key optional", []corev1.KeyToPath{{Key: "nope", Path: "x"}, {Key: "a", Path: "a"}}, nil, true,
			[]File{{"a", []byte("1"), 0o644}}, ""},
		{"escaping path", []corev1.KeyToPath{{Key: "a", Path: "../a"}}, nil, false, nil, "stay inside the volume"},
		{"absolute path", []corev1.KeyToPath{{Key: "a", Path: "/etc/a"}}, nil, false, nil, "must be relative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Project(data, tc.items, tc.mode, tc.optional, "config map ns/x")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			assertFiles(t, got, tc.want)
		})
	}
}

func TestDownward(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "rotor", Labels: map[string]string{"b": "2", "a": `q"uote`}},
		Status:     corev1.PodStatus{PodIP: "127.1.0.3"},
	}
	items := []corev1.DownwardAPIVolumeFile{
		{Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}},
		{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}, Mode: i32(0o600)},
		{Path: "ip", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}},
	}
	got, err := Downward(pod, items, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	assertFiles(t, got, []File{
		{"namespace", []byte("rotor"), 0o644},
		{"labels", []byte("a=\"q\\\"uote\"\nb=\"2\""), 0o600},
		{"ip", []byte("127.1.0.3"), 0o644},
	})
}

func TestWriteReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	if err := Write(dir, []File{{"token", []byte("one"), 0o644}, {"a/b/c", []byte("x"), 0o600}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := Write(dir, []File{{"token", []byte("two"), 0o644}}, nil); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "token")); string(b) != "two" {
		t.Fatalf("token = %q after the rewrite, want two", b)
	}
	if fi, err := os.Stat(filepath.Join(dir, "a/b/c")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("a/b/c: %v %v, want mode 0600", fi, err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Fatalf("temporary file %s left behind", e.Name())
		}
	}
}

func TestRefreshAt(t *testing.T) {
	t0 := time.Unix(0, 0)
	for _, tc := range []struct {
		name string
		life time.Duration
		want time.Duration
	}{
		{"80% of an hour", time.Hour, 48 * time.Minute},
		{"80% of ten minutes", 10 * time.Minute, 8 * time.Minute},
		{"a year-long token is still replaced within a day", 365 * 24 * time.Hour, 24 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := RefreshAt(t0, t0.Add(tc.life)).Sub(t0); got != tc.want {
				t.Fatalf("refresh after %s, want %s", got, tc.want)
			}
		})
	}
}

func assertFiles(t *testing.T, got, want []File) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("files %v, want %v", got, want)
	}
	for i := range want {
		if got[i].Path != want[i].Path || string(got[i].Data) != string(want[i].Data) || got[i].Mode != want[i].Mode {
			t.Fatalf("file %d = {%s %q %o}, want {%s %q %o}", i, got[i].Path, got[i].Data, got[i].Mode, want[i].Path, want[i].Data, want[i].Mode)
		}
	}
}
