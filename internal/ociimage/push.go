package ociimage

import (
	"context"
	"fmt"
	"net"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Pushed is one image copied to a registry.
type Pushed struct {
	// Ref is the tag pushed, registryHost/NAME:TAG.
	Ref string
	// Digest is the index digest; Pinned is registryHost/NAME@Digest, the
	// form to put in a Pod spec.
	Digest v1.Hash
	Pinned string
}

// Push copies every image of the layout in layoutDir to
// registryHost/NAME:TAG (TAG is the layout's, or tagOverride when not
// empty) and returns them in layout order. Plain HTTP and anonymous access
// are used for loopback hosts (127.0.0.0/8, ::1, localhost: the sandbox
// registry); any other host gets HTTPS and the credentials of the default
// keychain (~/.docker/config.json and its helpers).
func Push(ctx context.Context, layoutDir, registryHost, tagOverride string) ([]Pushed, error) {
	images, err := ReadLayout(layoutDir)
	if err != nil {
		return nil, err
	}
	var nameOpts []name.Option
	remoteOpts := []remote.Option{remote.WithContext(ctx)}
	if loopbackHost(registryHost) {
		nameOpts = append(nameOpts, name.Insecure)
		remoteOpts = append(remoteOpts, remote.WithAuth(authn.Anonymous))
	} else {
		remoteOpts = append(remoteOpts, remote.WithAuthFromKeychain(authn.DefaultKeychain))
	}
	out := make([]Pushed, 0, len(images))
	for _, img := range images {
		tag := img.Tag
		if tagOverride != "" {
			tag = tagOverride
		}
		ref, err := name.NewTag(registryHost+"/"+img.Name+":"+tag, nameOpts...)
		if err != nil {
			return nil, fmt.Errorf("push %s: %w", img.Name, err)
		}
		digest, err := img.Index.Digest()
		if err != nil {
			return nil, err
		}
		if err := remote.WriteIndex(ref, img.Index, remoteOpts...); err != nil {
			return nil, fmt.Errorf("push %s: %w", ref, err)
		}
		out = append(out, Pushed{Ref: ref.String(), Digest: digest, Pinned: ref.Context().Digest(digest.String()).String()})
	}
	return out, nil
}

// loopbackHost reports whether host[:port] names this machine.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
