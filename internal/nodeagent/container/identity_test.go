package container

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestResolveIdentity(t *testing.T) {
	users := ParseUsers([]byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\nbad line\n"),
		[]byte("root:x:0:\nnonroot:x:65532:\n"))
	i64 := func(v int64) *int64 { return &v }
	yes := true
	for _, tc := range []struct {
		name      string
		podSC     *corev1.PodSecurityContext
		sc        *corev1.SecurityContext
		imageUser string
		want      Identity
		wantErr   string
	}{
		{"image numeric uid:gid", nil, nil, "65532:65532", Identity{UID: 65532, GID: 65532, Home: "/home/nonroot"}, ""},
		{"image numeric uid, gid from passwd", nil, nil, "65532", Identity{UID: 65532, GID: 65532, Home: "/home/nonroot"}, ""},
		{"image name", nil, nil, "nonroot:nonroot", Identity{UID: 65532, GID: 65532, Home: "/home/nonroot"}, ""},
		{"no user is root", nil, nil, "", Identity{Home: "/root"}, ""},
		{"pod runAsUser wins", &corev1.PodSecurityContext{RunAsUser: i64(1000), RunAsGroup: i64(2000)}, nil, "65532:65532", Identity{UID: 1000, GID: 2000, Home: "/"}, ""},
		{"container over pod", &corev1.PodSecurityContext{RunAsUser: i64(1000)}, &corev1.SecurityContext{RunAsUser: i64(1001)}, "", Identity{UID: 1001, Home: "/"}, ""},
		{"groups", &corev1.PodSecurityContext{SupplementalGroups: []int64{5, 6}, FSGroup: i64(7)}, nil, "65532", Identity{UID: 65532, GID: 65532, Groups: []uint32{5, 6, 7}, Home: "/home/nonroot"}, ""},
		{"runAsNonRoot with root image", &corev1.PodSecurityContext{RunAsNonRoot: &yes}, nil, "", Identity{}, "runAsNonRoot and image will run as root"},
		{"runAsNonRoot with runAsUser 0", nil, &corev1.SecurityContext{RunAsNonRoot: &yes, RunAsUser: i64(0)}, "65532", Identity{}, "will run as root"},
		{"runAsNonRoot with user name", nil, &corev1.SecurityContext{RunAsNonRoot: &yes}, "nonroot", Identity{}, "non-numeric user"},
		{"runAsNonRoot satisfied", nil, &corev1.SecurityContext{RunAsNonRoot: &yes}, "65532:65532", Identity{UID: 65532, GID: 65532, Home: "/home/nonroot"}, ""},
		{"unknown user name", nil, nil, "ghost", Identity{}, "not in the image's /etc/passwd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &corev1.Pod{Spec: corev1.PodSpec{SecurityContext: tc.podSC}}
			c := &corev1.Container{Name: "c", SecurityContext: tc.sc}
			got, err := ResolveIdentity(p, c, tc.imageUser, users)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.UID != tc.want.UID || got.GID != tc.want.GID || got.Home != tc.want.Home || !slices.Equal(got.Groups, tc.want.Groups) {
				t.Fatalf("identity = %+v, want %+v", got, tc.want)
			}
		})
	}
}
