package container

import "testing"

func TestExpandVars(t *testing.T) {
	env := map[string]string{"A": "1", "OUT": "/tmp/o"}
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "echo hi", "echo hi"},
		{"known", "x=$(A)", "x=1"},
		{"unknown kept", "$(B)", "$(B)"},
		{"escaped", "$$(A)", "$(A)"},
		{"shell var untouched", "echo $OUT", "echo $OUT"},
		{"unterminated", "$(A", "$(A"},
		{"trailing dollar", "cost$", "cost$"},
		{"two", "$(A)-$(OUT)", "1-/tmp/o"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ExpandVars(tc.in, env); got != tc.want {
				t.Fatalf("ExpandVars(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
