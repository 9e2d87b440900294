package main

import (
	"reflect"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestParseOptions(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    options
		wantErr bool
	}{
		{name: "defaults", want: options{out: "bin/images", caBundle: "/etc/ssl/certs/ca-certificates.crt",
			platforms: []string{"linux/amd64", "linux/arm64"}, binaries: []string{"rotor-manager", "rotor-propeller", "rotor", "rotor-data"}}},
		{name: "lists trimmed", args: []string{"-platforms", " linux/arm64 ,", "-binaries", "rotor", "-tag", "v1", "-ca-bundle", ""},
			want: options{out: "bin/images", tag: "v1", platforms: []string{"linux/arm64"}, binaries: []string{"rotor"}}},
		{name: "no binaries", args: []string{"-binaries", ","}, wantErr: true},
		{name: "path as binary", args: []string{"-binaries", "cmd/rotor"}, wantErr: true},
		{name: "positional argument", args: []string{"rotor"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOptions(tt.args)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestTagFromDescribe(t *testing.T) {
	tests := map[string]string{
		"v0.3.0":                  "v0.3.0",
		"v0.3.0-4-gabc1234-dirty": "v0.3.0-4-gabc1234-dirty",
		"release/v1":              "release-v1",
		"":                        "dev",
		".hidden":                 "hidden",
	}
	for in, want := range tests {
		t.Run(in, func(t *testing.T) {
			if got := tagFromDescribe(in); got != want {
				t.Errorf("tagFromDescribe(%q) = %q, want %q", in, got, want)
			}
		})
	}
}

func TestGoEnv(t *testing.T) {
	tests := []struct {
		platform v1.Platform
		want     []string
	}{
		{v1.Platform{OS: "linux", Architecture: "amd64"}, []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOAMD64=v1"}},
		{v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64", "GOARM64=v8.0"}},
		{v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm", "GOARM=7"}},
	}
	for _, tt := range tests {
		t.Run(tt.platform.String(), func(t *testing.T) {
			if got := goEnv(tt.platform); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("goEnv = %v, want %v", got, tt.want)
			}
		})
	}
}
