// Package ociimage builds Rotor's container images without a Docker engine,
// reproducibly: the same binaries, epoch and labels always give the same
// digests, so two builds of one commit can be compared byte for byte.
//
// # Shape of an image
//
// Every image has two layers and no shell:
//
//  1. a base layer equivalent to distroless static "nonroot"
//     (gcr.io/distroless/static-debian12:nonroot): /etc/passwd and
//     /etc/group with root (0) and nonroot (65532), /etc/nsswitch.conf,
//     /home/nonroot (65532, 0700), /root (0700), /tmp (1777) and, when the
//     caller supplies one, the CA bundle /etc/ssl/certs/ca-certificates.crt;
//  2. the statically linked binary at /<name> (0755, owned by root so the
//     process, running as 65532, cannot rewrite it).
//
// The config runs the binary as User 65532:65532 with Entrypoint
// ["/<name>"], WorkingDir "/" and PATH=/, for platform linux/<arch>
// (arm64 carries Variant "v8"). Created and every history entry are the
// build's epoch. Labels org.opencontainers.image.{source,revision,version,
// title} say where the image comes from. One OCI image index per binary lists
// one manifest per platform; every media type is OCI, not Docker.
//
// # Why the digests are stable
//
//   - Layers are built in memory from a list of [File]s, sorted by path with
//     their parent directories made explicit, so the order never depends on a
//     file system walk or a map.
//   - Every tar header carries the epoch as ModTime (seconds, UTC), numeric
//     owners only (no uname/gname, which would vary with the build host's
//     /etc/passwd), no access or change times, and the USTAR format, which has
//     no room for anything else.
//   - Layers are gzip-compressed with compress/gzip at
//     gzip.DefaultCompression and an empty gzip header (no name, mtime 0).
//     Go's gzip output is a pure function of input, level and Go version;
//     the Go version already determines the binaries, so it adds no new
//     dependency. Gzip rather than uncompressed layers because every runtime
//     and registry handles it and it cuts what a push or pull moves to about
//     a third (a 55 MB stripped binary becomes a 16 MB layer); zstd would be
//     smaller, but older runtimes cannot read it.
//   - The caller passes the epoch (hack/image takes SOURCE_DATE_EPOCH or the
//     commit time), never time.Now.
//
// The one input the package cannot pin is the CA bundle, which is copied
// from the build host (Debian's ca-certificates package puts it at
// /etc/ssl/certs/ca-certificates.crt): two hosts with different versions of
// that package build different base layers, hence different digests. Without
// a bundle the image still builds, but TLS clients inside it trust no one.
//
// # Layouts and pushing
//
// [WriteLayout] stores a set of indexes in one OCI image layout directory,
// each tagged by an org.opencontainers.image.ref.name annotation NAME:TAG;
// [ReadLayout] lists them back and [Push] copies them to a registry, which is
// how the sandbox (cmd/rotor-registry) is fed.
//
// Building is pure (no goroutines, clocks or I/O) up to the layer bytes kept
// in memory; only WriteLayout, ReadLayout and Push touch disks or networks.
package ociimage
