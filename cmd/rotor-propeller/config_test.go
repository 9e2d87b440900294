package main

import (
	"flag"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"defaults", nil, ""},
		{"zero workers", []string{"--workers=0"}, "--workers must be at least 1"},
		{"bad selector", []string{"--interruptible-node-selector=spot"}, `"spot" is not key=value`},
		{"bad effect", []string{"--interruptible-tolerations=spot:Never"}, "effect must be NoSchedule"},
		{"good tolerations", []string{"--interruptible-tolerations=spot=true:NoSchedule,preempt:NoExecute"}, ""},
		{"cache prefix", []string{"--cache-prefix=/x"}, "must end with /"},
		{"http prefixes", []string{"--http-allowed-url-prefixes=https://a.example/,http://127.0.0.1:"}, ""},
		{"bad http prefix", []string{"--http-allowed-url-prefixes=https://a.example/?x=1"}, "--http-allowed-url-prefixes: URL prefix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c config
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			c.bind(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			err := c.validate()
			if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("validate() = %v, want %q", err, tc.wantErr)
			}
		})
	}
	var c config
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c.bind(fs)
	_ = fs.Parse([]string{"--interruptible-tolerations=spot=true:NoSchedule,preempt:NoExecute"})
	_ = c.validate()
	if len(c.pod.InterruptibleTolerations) != 2 || c.pod.InterruptibleTolerations[0].Value != "true" || c.pod.InterruptibleTolerations[1].Operator != "Exists" {
		t.Fatalf("tolerations = %+v", c.pod.InterruptibleTolerations)
	}
}
