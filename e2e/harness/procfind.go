package harness

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FindProcess returns the pid of the one process on this machine whose
// command line has argv0's base name and arg as its first argument, and
// whose environment holds envSubstring: how a test finds a container's
// process in the sandbox's process runtime (a pod's processes are the
// machine's). It fails the test unless exactly one matches.
func FindProcess(t testing.TB, argv0, arg, envSubstring string) int {
	t.Helper()
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var found []int
	for _, d := range dirs {
		cmd, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(cmd), "\x00"), "\x00")
		if len(args) < 2 || filepath.Base(args[0]) != argv0 || args[1] != arg {
			continue
		}
		env, err := os.ReadFile(filepath.Join(d, "environ"))
		if err != nil || !bytes.Contains(env, []byte(envSubstring)) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(d))
		found = append(found, pid)
	}
	if len(found) != 1 {
		t.Fatalf("%d processes %s %s with %q in their environment, want one: %v", len(found), argv0, arg, envSubstring, found)
	}
	return found[0]
}
