package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/rotor-dev/rotor/data/agent"
	"github.com/rotor-dev/rotor/data/ref"
	"github.com/rotor-dev/rotor/data/store"
	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
)

// Data is the data path's throughput against raw S3 PUT and GET on the
// same server in the same run.
type Data struct {
	Files    int     `json:"files"`
	FileMiB  int     `json:"fileMiB"`
	Parallel int     `json:"parallel"`
	RawPut   DataRun `json:"rawPut"`
	Upload   DataRun `json:"upload"`
	RawGet   DataRun `json:"rawGet"`
	Download DataRun `json:"download"`
}

// DataRun is one pass over the directory.
type DataRun struct {
	Seconds float64 `json:"seconds"`
	MBps    float64 `json:"MBps"`
}

// dataBench: a directory of files × fileMiB of random bytes, put and got
// with the plain S3 client (PutObject, GetObject; the same parallelism
// as the agent), then uploaded and downloaded by the data agent (sha256
// of every file, a manifest, verification on the way back), on one
// SeaweedFS. Each pass goes to its own prefix.
func dataBench(ctx context.Context, dir string, files, fileMiB int, res *Result) error {
	root, err := harness.RepoRoot()
	if err != nil {
		return err
	}
	bin := filepath.Join(root, "bin")
	env, srv, err := localcluster.StartS3Only(ctx, localcluster.Options{Dir: filepath.Join(dir, "data-s3"), BinDir: bin}, "bench")
	if err != nil {
		return err
	}
	defer env.Stop()
	src := filepath.Join(dir, "data-src", "outputs", "d")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(filepath.Join(dir, "data-src"))
	rng := rand.NewChaCha8([32]byte{1})
	for i := range files {
		f, err := os.Create(filepath.Join(src, fmt.Sprintf("part-%03d", i)))
		if err != nil {
			return err
		}
		_, err = io.CopyN(f, rng, int64(fileMiB)<<20)
		f.Close()
		if err != nil {
			return err
		}
	}
	total := float64(files*fileMiB) * (1 << 20) / 1e6 // MB
	d := Data{Files: files, FileMiB: fileMiB, Parallel: agent.Parallel}
	run := func(what string, f func() error) (DataRun, error) {
		start := time.Now()
		if err := f(); err != nil {
			return DataRun{}, fmt.Errorf("%s: %w", what, err)
		}
		s := time.Since(start).Seconds()
		r := DataRun{Seconds: s, MBps: total / s}
		say("data: %-9s %d × %d MiB in %.1f s: %.0f MB/s", what, files, fileMiB, s, r.MBps)
		return r, nil
	}
	client := s3.New(s3.Options{Region: srv.Region, BaseEndpoint: aws.String(srv.Endpoint), UsePathStyle: true,
		Credentials:                credentials.NewStaticCredentialsProvider(srv.AccessKeyID, srv.SecretAccessKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired, ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired})
	names, _ := filepath.Glob(filepath.Join(src, "part-*"))
	each := func(f func(name string) error) error {
		var g errgroup.Group
		g.SetLimit(agent.Parallel)
		for _, n := range names {
			g.Go(func() error { return f(n) })
		}
		return g.Wait()
	}
	if d.RawPut, err = run("raw PUT", func() error {
		return each(func(n string) error {
			f, err := os.Open(n)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bench"), Key: aws.String("raw/" + filepath.Base(n)), Body: f})
			return err
		})
	}); err != nil {
		return err
	}
	st, err := store.Open(ctx, store.Config{URL: srv.URL("bench", "rotor"), AccessKeyID: srv.AccessKeyID, SecretAccessKey: srv.SecretAccessKey})
	if err != nil {
		return err
	}
	defer st.Close()
	prefix, err := ref.Attempt{Namespace: "bench", Workflow: "wf", WorkflowUID: "u", Node: "a", Attempt: 0}.Prefix(st.Root())
	if err != nil {
		return err
	}
	var up *agent.Result
	if d.Upload, err = run("upload", func() error {
		up, err = agent.Upload(ctx, st, &agent.Spec{Prefix: prefix, Dir: filepath.Join(dir, "data-src"), Outputs: []agent.Output{{Name: "d", Kind: ref.KindDirectory}}})
		return err
	}); err != nil {
		return err
	}
	r, ok, err := parseDirRef(up, files)
	if !ok {
		return fmt.Errorf("the upload reported %v (%v), not a directory of %d files", up, err, files)
	}
	getDir := filepath.Join(dir, "data-get")
	defer os.RemoveAll(getDir)
	rawGet := func() error {
		_ = os.RemoveAll(getDir)
		if err := os.MkdirAll(getDir, 0o755); err != nil {
			return err
		}
		return each(func(n string) error {
			out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bench"), Key: aws.String("raw/" + filepath.Base(n))})
			if err != nil {
				return err
			}
			defer out.Body.Close()
			f, err := os.Create(filepath.Join(getDir, filepath.Base(n)))
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(f, out.Body)
			return err
		})
	}
	download := func() error {
		_ = os.RemoveAll(getDir)
		return agent.Download(ctx, st, &agent.Spec{Dir: getDir, Inputs: []agent.Input{{Name: "d", Kind: ref.KindDirectory, Ref: r}}})
	}
	// Reads alternate, twice each, and the figures are the means: the
	// first read after the writes pays for the server's settling.
	var gets, downs []DataRun
	for range 2 {
		g, err := run("raw GET", rawGet)
		if err != nil {
			return err
		}
		dl, err := run("download", download)
		if err != nil {
			return err
		}
		gets, downs = append(gets, g), append(downs, dl)
	}
	d.RawGet, d.Download = meanRun(gets, total), meanRun(downs, total)
	res.Data = d
	return nil
}

// meanRun is the run of the mean time.
func meanRun(rs []DataRun, totalMB float64) DataRun {
	var s float64
	for _, r := range rs {
		s += r.Seconds
	}
	s /= float64(len(rs))
	return DataRun{Seconds: s, MBps: totalMB / s}
}

func parseDirRef(up *agent.Result, files int) (ref.Ref, bool, error) {
	var r ref.Ref
	err := json.Unmarshal(up.Outputs["d"], &r)
	return r, err == nil && r.IsDir() && r.Files == files, err
}
