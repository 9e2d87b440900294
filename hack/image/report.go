package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/rotor-dev/rotor/internal/ociimage"
)

// report prints one line per image of the layout in dir:
//
//	NAME TAG INDEX-DIGEST PLATFORM=IMAGE-DIGEST...
//
// The format is stable so that `make image-verify` can diff two runs.
func report(w io.Writer, dir string) error {
	images, err := ociimage.ReadLayout(dir)
	if err != nil {
		return err
	}
	for _, img := range images {
		d, err := img.Index.Digest()
		if err != nil {
			return err
		}
		im, err := img.Index.IndexManifest()
		if err != nil {
			return err
		}
		fields := []string{img.Name, img.Tag, d.String()}
		for _, m := range im.Manifests {
			fields = append(fields, m.Platform.String()+"="+m.Digest.String())
		}
		if _, err := fmt.Fprintln(w, strings.Join(fields, " ")); err != nil {
			return err
		}
	}
	return nil
}
