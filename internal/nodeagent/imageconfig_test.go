package nodeagent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestImageSettings(t *testing.T) {
	base := ImageConfig{KubeServiceHost: "127.0.0.1", KubeServicePort: "6443", Helper: "/bin/agent"}
	t.Run("defaults", func(t *testing.T) {
		s, err := base.settings("/work")
		if err != nil {
			t.Fatal(err)
		}
		if s.ImageDir != "/work/images" || s.podCIDR.String() != "127.1.0.0/16" || s.ShutdownGrace != 10*time.Second ||
			s.RestartBackoff.Initial != 10*time.Second || s.Clock == nil {
			t.Fatalf("defaults not filled: %+v", s)
		}
	})
	for _, tc := range []struct {
		name, want string
		edit       func(*ImageConfig)
	}{
		{"cidr not loopback", "must be loopback", func(c *ImageConfig) { c.PodCIDR = "10.0.0.0/16" }},
		{"cidr unparsable", "--pod-cidr", func(c *ImageConfig) { c.PodCIDR = "127.1.0.0" }},
		{"no API address", "--kube-service-host", func(c *ImageConfig) { c.KubeServicePort = "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.edit(&c)
			if _, err := c.settings("/work"); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("settings error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestGracePeriod(t *testing.T) {
	i64 := func(v int64) *int64 { return &v }
	for _, tc := range []struct {
		name string
		pod  corev1.Pod
		want time.Duration
	}{
		{"deletion grace wins", corev1.Pod{ObjectMeta: metav1.ObjectMeta{DeletionGracePeriodSeconds: i64(5)},
			Spec: corev1.PodSpec{TerminationGracePeriodSeconds: i64(60)}}, 5 * time.Second},
		{"spec grace", corev1.Pod{Spec: corev1.PodSpec{TerminationGracePeriodSeconds: i64(60)}}, time.Minute},
		{"default", corev1.Pod{}, 30 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := gracePeriod(&tc.pod); got != tc.want {
				t.Fatalf("gracePeriod = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestSubPath(t *testing.T) {
	vol := t.TempDir()
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(vol, "escape")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, sub, want string
		ok              bool
	}{
		{"created", "a/b", filepath.Join(vol, "a/b"), true},
		{"symlink kept inside", "escape/x", filepath.Join(vol, outside, "x"), true},
		{"dotdot refused", "../x", "", false},
		{"absolute refused", "/etc", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := subPath(vol, tc.sub)
			if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
				t.Fatalf("subPath(%q) = %q, %v; want %q ok=%v", tc.sub, got, err, tc.want, tc.ok)
			}
		})
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatalf("subPath created %v outside the volume", entries)
	}
}

func TestShouldRestart(t *testing.T) {
	for _, tc := range []struct {
		policy corev1.RestartPolicy
		init   bool
		code   int32
		want   bool
	}{
		{corev1.RestartPolicyAlways, false, 0, true},
		{corev1.RestartPolicyAlways, true, 0, false},
		{corev1.RestartPolicyAlways, true, 1, true},
		{corev1.RestartPolicyOnFailure, false, 0, false},
		{corev1.RestartPolicyOnFailure, false, 2, true},
		{corev1.RestartPolicyNever, false, 2, false},
	} {
		name := string(tc.policy)
		if tc.init {
			name += " init"
		}
		t.Run(fmt.Sprintf("%s exit %d", name, tc.code), func(t *testing.T) {
			c := &containerRun{w: &imagePod{pod: &corev1.Pod{Spec: corev1.PodSpec{RestartPolicy: tc.policy}}}, init: tc.init}
			if got := c.shouldRestart(tc.code); got != tc.want {
				t.Fatalf("shouldRestart = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestApplyKeepsOthersConditions(t *testing.T) {
	s := corev1.PodStatus{QOSClass: corev1.PodQOSBestEffort, Conditions: []corev1.PodCondition{
		{Type: corev1.PodReady, Status: corev1.ConditionFalse}, {Type: "DisruptionTarget", Status: corev1.ConditionTrue},
	}}
	apply(&s, corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "127.1.0.2", Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}})
	if s.Phase != corev1.PodRunning || s.PodIP != "127.1.0.2" || s.QOSClass != corev1.PodQOSBestEffort || len(s.Conditions) != 2 ||
		s.Conditions[0].Status != corev1.ConditionTrue || s.Conditions[1].Type != "DisruptionTarget" {
		t.Fatalf("applied status %+v", s)
	}
}
