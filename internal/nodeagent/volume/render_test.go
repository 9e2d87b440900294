package volume

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
)

// kubeAPIAccess is the volume the ServiceAccount admission plugin adds.
func kubeAPIAccess() corev1.Volume {
	exp := int64(3607)
	return corev1.Volume{Name: "kube-api-access-x", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		DefaultMode: i32(0o644),
		Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: &exp}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"},
				Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{
				{Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}}},
		},
	}}}
}

func TestRenderKubeAPIAccessAndRefresh(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(10_000, 0))
	cs := fake.NewClientset(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kube-root-ca.crt", Namespace: "rotor"}, Data: map[string]string{"ca.crt": "PEM"}})
	var issued atomic.Int32
	var lastReq atomic.Pointer[authenticationv1.TokenRequest]
	cs.PrependReactor("create", "serviceaccounts", func(a k8stesting.Action) (bool, runtime.Object, error) {
		req := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenRequest)
		lastReq.Store(req)
		n := issued.Add(1)
		req = req.DeepCopy()
		req.Status = authenticationv1.TokenRequestStatus{Token: fmt.Sprint("token-", n), ExpirationTimestamp: metav1.NewTime(clk.Now().Add(time.Hour))}
		return true, req, nil
	})
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "rotor", UID: "uid-1"},
		Spec: corev1.PodSpec{ServiceAccountName: "rotor-manager", Volumes: []corev1.Volume{
			kubeAPIAccess(), {Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		}},
	}
	r := &Renderer{Client: cs, Clock: clk}
	root := t.TempDir()
	rendered, err := r.Render(context.Background(), pod, root)
	if err != nil {
		t.Fatal(err)
	}
	dir := rendered.Dirs["kube-api-access-x"]
	for file, want := range map[string]string{"token": "token-1", "ca.crt": "PEM", "namespace": "rotor"} {
		if b, err := os.ReadFile(filepath.Join(dir, file)); err != nil || string(b) != want {
			t.Fatalf("%s = %q (%v), want %q", file, b, err, want)
		}
	}
	req := lastReq.Load()
	if ref := req.Spec.BoundObjectRef; ref == nil || ref.Kind != "Pod" || ref.UID != "uid-1" || *req.Spec.ExpirationSeconds != 3607 {
		t.Fatalf("token request %+v, want bound to pod uid-1 with 3607s", req.Spec)
	}
	if fi, err := os.Stat(rendered.Dirs["scratch"]); err != nil || fi.Mode().Perm() != 0o777 {
		t.Fatalf("emptyDir %v %v, want mode 0777", fi, err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Refresh(ctx, pod, rendered)
	waitFor(t, clk.HasWaiters, "the refresher to wait on the clock")
	clk.Step(47 * time.Minute)
	time.Sleep(20 * time.Millisecond)
	if issued.Load() != 1 {
		t.Fatalf("token refreshed before 80%% of its life")
	}
	clk.Step(time.Minute)
	waitFor(t, func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "token"))
		return string(b) == "token-2"
	}, "the token file to be rewritten at 80% of its life")
}

func TestRenderErrors(t *testing.T) {
	yes := true
	for _, tc := range []struct {
		name string
		vol  corev1.Volume
		ok   bool
	}{
		{"missing secret", corev1.Volume{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "nope"}}}, false},
		{"missing optional secret", corev1.Volume{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "nope", Optional: &yes}}}, true},
		{"pvc unsupported", corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "c"}}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Renderer{Client: fake.NewClientset(), Clock: clocktesting.NewFakeClock(time.Unix(0, 0))}
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}, Spec: corev1.PodSpec{Volumes: []corev1.Volume{tc.vol}}}
			_, err := r.Render(context.Background(), pod, t.TempDir())
			if (err == nil) != tc.ok {
				t.Fatalf("Render error = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 5s waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
