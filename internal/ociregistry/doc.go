// Package ociregistry is the sandbox's OCI registry: the registry of
// github.com/google/go-containerregistry/pkg/registry with blobs on disk,
// plus one structured log line per request. A development component, like
// package nodeagent: no TLS, no authentication, so it listens on loopback
// only (see CheckListenAddr).
//
// What survives a restart: blobs (layers and configs) live in Config.Dir,
// but ggcr keeps manifests and tags in memory, so a restarted registry
// knows no image until they are pushed again. Re-pushing is cheap: the
// client finds every blob already present and uploads only the manifests.
// Uploads in progress are buffered in memory too, and every blob HEAD
// re-hashes the file, so the registry suits images of tens of megabytes,
// not gigabytes.
package ociregistry
