package container

import (
	"slices"
	"testing"
)

func TestArgv(t *testing.T) {
	ep, cmd := []string{"/manager"}, []string{"--default"}
	env := map[string]string{"POD_IP": "127.1.0.5"}
	for _, tc := range []struct {
		name          string
		command, args []string
		want          []string
	}{
		{"image only", nil, nil, []string{"/manager", "--default"}},
		{"args replace cmd", nil, []string{"--x"}, []string{"/manager", "--x"}},
		{"command drops cmd", []string{"/other"}, nil, []string{"/other"}},
		{"command and args", []string{"/other"}, []string{"-v"}, []string{"/other", "-v"}},
		{"expansion", nil, []string{"--bind=$(POD_IP):9090", "$(UNSET)", "$$(POD_IP)"}, []string{"/manager", "--bind=127.1.0.5:9090", "$(UNSET)", "$(POD_IP)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Argv(tc.command, tc.args, ep, cmd, env); !slices.Equal(got, tc.want) {
				t.Fatalf("Argv = %q, want %q", got, tc.want)
			}
		})
	}
}
