package localcluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rotor-dev/rotor/data/store"
)

// S3 is the sandbox's S3 server (SeaweedFS's weed, in one process): the
// object store of Rotor's data plane.
type S3 struct {
	// Endpoint is the S3 API's base URL (plain HTTP on loopback).
	Endpoint string `json:"endpoint"`
	// Region is what clients sign requests for (weed accepts any).
	Region string `json:"region"`
	// AccessKeyID and SecretAccessKey are the one identity the server
	// knows, allowed everything (Rotor's); Anonymous requests are
	// refused.
	AccessKeyID     string `json:"accessKeyID"`
	SecretAccessKey string `json:"secretAccessKey"`
	// Buckets were created at start-up.
	Buckets []string `json:"buckets"`
}

// URL is an s3:// URL for bucket and prefix on this server, in the form
// Rotor's raw-data flags take (package data/store).
func (s *S3) URL(bucket, prefix string) string {
	u := "s3://" + bucket
	if prefix = strings.Trim(prefix, "/"); prefix != "" {
		u += "/" + prefix
	}
	return u + "?endpoint=" + s.Endpoint + "&region=" + s.Region
}

// s3Ports are the listeners weed mini opens; all are chosen here: its
// defaults are fixed numbers (a busy default is silently moved, a busy
// explicit one is an error), and gRPC ports default to HTTP port + 10000,
// which may fall in the ephemeral range. Its Iceberg, Lance, WebDAV and
// legacy admin listeners are turned off.
var s3Ports = []string{"master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
	"filer.port", "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc"}

// StartS3 starts weed (from BinDir) as a single-process S3 server on
// loopback with its data under Dir/s3, creates buckets, and returns when
// an authenticated request lists them. It is tracked as process "s3", so
// Stop ends it.
func (e *Env) StartS3(ctx context.Context, buckets ...string) (*S3, error) {
	dir := filepath.Join(e.Dir, "s3")
	for _, d := range []string{"data", "logs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	s := &S3{Region: "us-east-1", AccessKeyID: "rotor", SecretAccessKey: randomHex(20), Buckets: buckets}
	cfg := map[string]any{"identities": []map[string]any{{
		"name":        "rotor",
		"credentials": []map[string]string{{"accessKey": s.AccessKeyID, "secretKey": s.SecretAccessKey}},
		"actions":     []string{"Admin", "Read", "Write", "List", "Tagging"},
	}}}
	b, _ := json.Marshal(cfg)
	cfgFile := filepath.Join(dir, "s3.json")
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		return nil, err
	}
	args := []string{"-logdir=" + filepath.Join(dir, "logs"), "mini", "-dir=" + filepath.Join(dir, "data"),
		// Telemetry off: it would post to seaweedfs.com. Volumes of 64 MB
		// rather than 30 GB keep a sandbox's disk and memory small.
		"-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false", "-master.volumeSizeLimitMB=64",
		"-s3.config=" + cfgFile, "-s3.port.iceberg=0", "-s3.port.lance=0",
		"-webdav=false", "-admin.ui=false", "-admin.port.legacy=0"}
	var s3Port int
	for _, name := range s3Ports {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		if name == "s3.port" {
			s3Port = p
		}
		args = append(args, fmt.Sprintf("-%s=%d", name, p))
	}
	if len(buckets) > 0 {
		args = append(args, "-bucket="+strings.Join(buckets, ","))
	}
	s.Endpoint = "http://127.0.0.1:" + strconv.Itoa(s3Port)
	// Its heap grows to 600 MB over a few 50 MB round trips otherwise.
	p, err := e.StartProcess("s3", "weed", args, []string{"GOMEMLIMIT=256MiB"})
	if err != nil {
		return nil, err
	}
	if err := waitS3(ctx, s, p); err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.S3 = s
	e.mu.Unlock()
	return s, e.Save()
}

// waitS3 waits (60 s at most) until an authenticated list of every
// bucket asked for succeeds.
func waitS3(ctx context.Context, s *S3, p *Process) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var last error
	for _, b := range s.Buckets {
		st, err := store.Open(ctx, store.Config{URL: s.URL(b, ""), AccessKeyID: s.AccessKeyID, SecretAccessKey: s.SecretAccessKey})
		if err != nil {
			return err
		}
		for {
			if done, err := p.Exited(); done {
				st.Close()
				return fmt.Errorf("the S3 server (weed) exited while starting: %v (log %s)", err, p.Log)
			}
			cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
			last = st.Check(cctx)
			ccancel()
			if last == nil {
				break
			}
			select {
			case <-ctx.Done():
				st.Close()
				return fmt.Errorf("the S3 server at %s did not list bucket %s within 60s (last: %v; log %s)", s.Endpoint, b, last, p.Log)
			case <-time.After(200 * time.Millisecond):
			}
		}
		st.Close()
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// StartS3Only starts the S3 server alone (no etcd, no apiserver), for
// tests of the data plane's store. Stop ends it.
func StartS3Only(ctx context.Context, opts Options, buckets ...string) (_ *Env, _ *S3, err error) {
	if err := opts.defaults(); err != nil {
		return nil, nil, err
	}
	e := &Env{Dir: opts.Dir, opts: opts, Tokens: map[string]string{}}
	if err := os.MkdirAll(filepath.Join(opts.Dir, "logs"), 0o755); err != nil {
		return nil, nil, err
	}
	s, err := e.StartS3(ctx, buckets...)
	if err != nil {
		e.Stop()
		return nil, nil, err
	}
	return e, s, nil
}

// RawDataBucket and RawDataSecret are the sandbox's data plane: the
// bucket of task files and directories, and the Secret in RotorNamespace
// holding its credentials.
const (
	RawDataBucket = "rotor-data"
	RawDataSecret = "rotor-raw-data"
)

// StartDataPlane starts the S3 server with the raw-data bucket and puts
// its credentials in the control cluster (Secret RawDataSecret, keys
// accessKeyID and secretAccessKey). Propellers started afterwards get the
// flags that use it (DataArgs).
func (e *Env) StartDataPlane(ctx context.Context) (*S3, error) {
	s, err := e.StartS3(ctx, RawDataBucket)
	if err != nil {
		return nil, err
	}
	kube, _, err := e.Clients()
	if err != nil {
		return nil, err
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: RawDataSecret, Namespace: RotorNamespace},
		Data: map[string][]byte{"accessKeyID": []byte(s.AccessKeyID), "secretAccessKey": []byte(s.SecretAccessKey)}}
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: RotorNamespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("create namespace %s: %w", RotorNamespace, err)
	}
	if _, err := kube.CoreV1().Secrets(RotorNamespace).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("create secret %s/%s: %w", RotorNamespace, RawDataSecret, err)
	}
	return s, nil
}

// DataArgs are the propeller flags of the sandbox's data plane (none
// before StartDataPlane): the raw-data location, its Secret, and the data
// agent's executable for the process runtime.
func (e *Env) DataArgs() []string {
	e.mu.Lock()
	s := e.S3
	e.mu.Unlock()
	if s == nil {
		return nil
	}
	return []string{"--raw-data-url=" + s.URL(RawDataBucket, "raw"), "--raw-data-secret=" + RawDataSecret,
		"--data-agent-command=" + filepath.Join(e.opts.BinDir, "rotor-data")}
}

// managerDataArgs give the managers the propellers' raw-data location
// (none before StartDataPlane), for the leader's retention sweeper.
func (e *Env) managerDataArgs() []string {
	e.mu.Lock()
	s := e.S3
	e.mu.Unlock()
	if s == nil {
		return nil
	}
	return []string{"--raw-data-url=" + s.URL(RawDataBucket, "raw"), "--raw-data-secret=" + RawDataSecret}
}

// CreateBucket makes a bucket on the sandbox's S3 server (with its one
// identity's credentials); one that exists already is fine.
func (s *S3) CreateBucket(ctx context.Context, name string) error {
	client := s3.New(s3.Options{
		Region: s.Region, BaseEndpoint: aws.String(s.Endpoint), UsePathStyle: true,
		Credentials:                credentials.NewStaticCredentialsProvider(s.AccessKeyID, s.SecretAccessKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
	})
	_, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)})
	var owned *s3types.BucketAlreadyOwnedByYou
	var exists *s3types.BucketAlreadyExists
	if err != nil && !errors.As(err, &owned) && !errors.As(err, &exists) {
		return fmt.Errorf("create bucket %s on %s: %w", name, s.Endpoint, err)
	}
	return nil
}
