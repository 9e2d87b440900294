// Command image builds Rotor's container images without Docker: it
// cross-compiles each binary for each platform into bin/linux_<arch>/, builds
// one multi-platform OCI image index per binary with package ociimage, writes
// them all into one OCI image layout (-out) and prints one line per image
// with its digests. Optionally it pushes them (-push HOST:PORT).
//
// Two runs on one commit print the same digests: the binaries are built with
// -trimpath and an empty build ID, the images carry the commit time
// (SOURCE_DATE_EPOCH, else `git log -1 --format=%ct`) instead of the clock,
// and ociimage writes deterministic layers. `make image-verify` checks it.
//
// Run it from the repository root: go run ./hack/image [flags].
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/rotor-dev/rotor/internal/ociimage"
)

// options are the command's flags, validated by parseOptions.
type options struct {
	out, tag, push, caBundle string
	platforms, binaries      []string
}

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	opts, err := parseOptions(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, opts, log); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func parseOptions(args []string) (options, error) {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	var o options
	var platforms, binaries string
	fs.StringVar(&o.out, "out", "bin/images", "OCI image layout directory to write (replaced if it is one)")
	fs.StringVar(&o.tag, "tag", "", "image tag (default: git describe --tags --always --dirty, else dev)")
	fs.StringVar(&platforms, "platforms", "linux/amd64,linux/arm64", "comma-separated platforms")
	fs.StringVar(&binaries, "binaries", "rotor-manager,rotor-propeller,rotor,rotor-data", "comma-separated binaries, each built from ./cmd/<name>")
	fs.StringVar(&o.push, "push", "", "registry HOST:PORT to push the images to after building (plain HTTP for loopback)")
	fs.StringVar(&o.caBundle, "ca-bundle", ociimage.DefaultCABundle, "host CA bundle copied into the images (skipped with a warning if missing)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q: every input is a flag", fs.Args())
	}
	o.platforms, o.binaries = splitList(platforms), splitList(binaries)
	if len(o.platforms) == 0 || len(o.binaries) == 0 {
		return o, fmt.Errorf("-platforms and -binaries need at least one entry each")
	}
	for _, b := range o.binaries {
		if strings.ContainsAny(b, "/:@ ") {
			return o, fmt.Errorf("-binaries: %q is not a binary name; give names like rotor-propeller", b)
		}
	}
	return o, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
