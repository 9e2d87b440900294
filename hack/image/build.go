package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/rotor-dev/rotor/internal/ociimage"
)

// source is the org.opencontainers.image.source label of every image.
const source = "https://github.com/rotor-dev/rotor"

func run(ctx context.Context, o options, log *slog.Logger) error {
	platforms := make([]v1.Platform, 0, len(o.platforms))
	for _, s := range o.platforms {
		p, err := ociimage.ParsePlatform(s)
		if err != nil {
			return fmt.Errorf("-platforms: %w", err)
		}
		platforms = append(platforms, p)
	}
	epoch, err := buildEpoch(ctx)
	if err != nil {
		return err
	}
	tag := o.tag
	if tag == "" {
		tag = defaultTag(ctx)
	}
	spec := ociimage.Spec{Epoch: epoch, Source: source, Version: tag, Revision: git(ctx, "rev-parse", "HEAD")}
	if spec.CABundle, err = readCABundle(o.caBundle, log); err != nil {
		return err
	}
	for _, p := range platforms {
		start := time.Now()
		if err := compile(ctx, p, o.binaries); err != nil {
			return err
		}
		log.Info("compiled", "platform", p.String(), "binaries", strings.Join(o.binaries, ","), "took", time.Since(start).Round(time.Millisecond))
	}
	images := make(map[string]v1.ImageIndex, len(o.binaries))
	for _, name := range o.binaries {
		s := spec
		s.Name = name
		if images[name], err = index(s, platforms); err != nil {
			return err
		}
	}
	if err := ociimage.WriteLayout(o.out, images, tag); err != nil {
		return err
	}
	if err := report(os.Stdout, o.out); err != nil {
		return err
	}
	if o.push == "" {
		return nil
	}
	pushed, err := ociimage.Push(ctx, o.out, o.push, "")
	for _, p := range pushed {
		fmt.Printf("pushed %s %s\n", p.Ref, p.Digest)
	}
	return err
}

// index reads the compiled binaries of s.Name and builds their index.
func index(s ociimage.Spec, platforms []v1.Platform) (v1.ImageIndex, error) {
	bins := make([]ociimage.Binary, 0, len(platforms))
	for _, p := range platforms {
		data, err := os.ReadFile(filepath.Join(binDir(p), s.Name))
		if err != nil {
			return nil, err
		}
		bins = append(bins, ociimage.Binary{Platform: p, Data: data})
	}
	return ociimage.Index(s, bins)
}

// binDir is where compile puts the binaries of p, and where the Dockerfile
// expects them (bin/linux_${TARGETARCH}).
func binDir(p v1.Platform) string {
	return filepath.Join("bin", p.OS+"_"+p.Architecture)
}

// compile cross-compiles ./cmd/<name> for p. -trimpath drops the build
// host's paths and -buildid= the build ID (a hash including the toolchain's
// own), so equal sources give equal binaries; -s -w drop symbol and DWARF
// tables, which a distroless image has no debugger to use.
func compile(ctx context.Context, p v1.Platform, names []string) error {
	args := []string{"build", "-trimpath", "-ldflags", "-s -w -buildid=", "-o", binDir(p) + string(filepath.Separator)}
	for _, n := range names {
		args = append(args, "./cmd/"+n)
	}
	goBin := os.Getenv("GO")
	if goBin == "" {
		goBin = "go"
	}
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Env = append(os.Environ(), goEnv(p)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s for %s: %w", strings.Join(args, " "), p, err)
	}
	return nil
}

// goEnv is the environment selecting p. The microarchitecture level is
// pinned to the platform's baseline so a GOAMD64 or GOARM64 set on the build
// host cannot change the binary or make it fail on the oldest CPUs the
// platform promises.
func goEnv(p v1.Platform) []string {
	env := []string{"CGO_ENABLED=0", "GOOS=" + p.OS, "GOARCH=" + p.Architecture}
	switch p.Architecture {
	case "amd64":
		env = append(env, "GOAMD64=v1")
	case "arm64":
		env = append(env, "GOARM64=v8.0")
	case "arm":
		env = append(env, "GOARM="+strings.TrimPrefix(p.Variant, "v"))
	}
	return env
}

// buildEpoch is SOURCE_DATE_EPOCH (https://reproducible-builds.org) if set,
// else the commit time of HEAD. Never the clock: that would change every
// digest on every build.
func buildEpoch(ctx context.Context) (time.Time, error) {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970: %w", s, err)
		}
		return time.Unix(sec, 0).UTC(), nil
	}
	out := git(ctx, "log", "-1", "--format=%ct")
	sec, err := strconv.ParseInt(out, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("no commit time from git (%q): run in the repository or set SOURCE_DATE_EPOCH", out)
	}
	return time.Unix(sec, 0).UTC(), nil
}

// invalidTagChars are those OCI tags may not hold; tags are
// [A-Za-z0-9_][A-Za-z0-9._-]{0,127}.
var invalidTagChars = regexp.MustCompile(`[^A-Za-z0-9._-]`)

// defaultTag is `git describe --tags --always --dirty` as a valid tag, or
// "dev" outside a repository.
func defaultTag(ctx context.Context) string {
	return tagFromDescribe(git(ctx, "describe", "--tags", "--always", "--dirty"))
}

// tagFromDescribe turns git describe's output into a valid OCI tag
// ("release/v1" → "release-v1"), or "dev" if nothing is left.
func tagFromDescribe(describe string) string {
	d := invalidTagChars.ReplaceAllString(describe, "-")
	d = strings.TrimLeft(d, ".-")
	if len(d) > 128 {
		d = d[:128]
	}
	if d == "" {
		return "dev"
	}
	return d
}

// git returns git's trimmed output, or "" if git fails.
func git(ctx context.Context, args ...string) string {
	out, err := exec.CommandContext(ctx, "git", args...).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// readCABundle reads the host's CA bundle; a missing one is skipped with a
// warning because the images still work for plain-HTTP or in-cluster use.
func readCABundle(path string, log *slog.Logger) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		log.Warn("CA bundle missing: the images will trust no certificate authority", "path", path)
		return nil, nil
	}
	return data, err
}
