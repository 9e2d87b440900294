package localcluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rotor-dev/rotor/internal/etcdclient"
)

// Runtime is how a target cluster's nodes run pods.
type Runtime string

const (
	// RuntimeProcess runs each pod's container command as a local process
	// (Rotor's node agent). A development runtime: no isolation, no images.
	RuntimeProcess Runtime = "process"
	// RuntimeKwok fakes pods with kwok stages driven by sim.rotor.dev/*
	// annotations. For scale and failure tests.
	RuntimeKwok Runtime = "kwok"
)

// Options configure an environment. Start fills defaults.
type Options struct {
	// Dir holds everything: keys, kubeconfigs, data, logs, state.json.
	Dir string
	// BinDir holds etcd, kube-apiserver, kube-scheduler, kwok and
	// rotor-nodeagent.
	BinDir string
	// CRDDir holds CRD YAML to install on the control cluster.
	CRDDir string
	// Targets is the number of target clusters.
	Targets int
	// Runtime is the node runtime of every target.
	Runtime Runtime
	// NodesPerTarget is the number of fake nodes per target (default 1).
	NodesPerTarget int
	// Users are extra identities with their own tokens and kubeconfigs,
	// e.g. one per Rotor process, so audit logs can tell writers apart.
	Users []string
	// AuditLog turns on the control apiserver's audit log of writes.
	AuditLog bool
	// TargetAuditLog turns on the targets' audit logs of writes too (who
	// created a task pod, as whom).
	TargetAuditLog bool
	// ControlNodes is the number of nodes of the control cluster that run
	// pods from images (0: the control cluster runs none). With any, the
	// control cluster also gets kube-controller-manager, a kube-scheduler,
	// the ServiceAccount admission plugin and an image registry: what
	// installing Rotor's Helm chart needs. Its audit log then records
	// every request of Rotor's ServiceAccounts and every write of anyone.
	ControlNodes int
	// EtcdTLS serves etcd over TLS with client certificates (of the
	// sandbox's CA) required, for the apiservers and Rotor alike.
	EtcdTLS bool
	// EtcdAuth (with EtcdTLS) turns etcd's auth on with the roles of
	// package etcdroles: the apiservers and EtcdClient are etcd's root,
	// the managers and replicas get their own certificates (CN
	// rotor-manager, rotor-propeller) and only their own keys.
	EtcdAuth bool
	Logger   *slog.Logger
}

func (o *Options) defaults() error {
	if o.Dir == "" || o.BinDir == "" {
		return errors.New("localcluster: Dir and BinDir are required")
	}
	if o.Runtime == "" {
		o.Runtime = RuntimeProcess
	}
	if o.Runtime != RuntimeProcess && o.Runtime != RuntimeKwok {
		return fmt.Errorf("localcluster: unknown runtime %q: use process or kwok", o.Runtime)
	}
	if o.EtcdAuth && !o.EtcdTLS {
		return errors.New("localcluster: EtcdAuth needs EtcdTLS (etcd's users are client certificates here)")
	}
	if o.NodesPerTarget <= 0 {
		o.NodesPerTarget = 1
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

// ClusterInfo describes one started cluster.
type ClusterInfo struct {
	Name   string `json:"name"`
	Server string `json:"server"`
	// Kubeconfig is the path of the admin kubeconfig.
	Kubeconfig string  `json:"kubeconfig"`
	EtcdPrefix string  `json:"etcdPrefix"`
	Runtime    Runtime `json:"runtime,omitempty"`
	AuditLog   string  `json:"auditLog,omitempty"`
}

// Env is a running environment. Its exported fields are saved in
// Dir/state.json so another process (rotor dev down) can stop it.
type Env struct {
	Dir          string `json:"dir"`
	EtcdEndpoint string `json:"etcdEndpoint"`
	// EtcdCAFile, EtcdCertFile and EtcdKeyFile are etcd's CA and a client
	// certificate for it (Options.EtcdTLS).
	EtcdCAFile   string `json:"etcdCAFile,omitempty"`
	EtcdCertFile string `json:"etcdCertFile,omitempty"`
	EtcdKeyFile  string `json:"etcdKeyFile,omitempty"`
	// EtcdUsers are the client certificates of the components' etcd
	// users (Options.EtcdAuth), by user name.
	EtcdUsers map[string]EtcdCert `json:"etcdUsers,omitempty"`
	Control   ClusterInfo         `json:"control"`
	Targets   []ClusterInfo       `json:"targets"`
	Processes []*Process          `json:"processes"`
	// ManagerAdmin lists the admin API addresses of the managers started.
	ManagerAdmin []string `json:"managerAdmin,omitempty"`
	// ManagerWebhook lists the admission webhook URLs of the managers
	// started (RegisterWebhook points the control apiserver at one).
	ManagerWebhook []string `json:"managerWebhook,omitempty"`
	// S3 is the sandbox's S3 server, once StartS3 ran.
	S3 *S3 `json:"s3,omitempty"`
	// Registry is the host:port of the sandbox's image registry
	// (Options.ControlNodes > 0).
	Registry string `json:"registry,omitempty"`
	// Tokens maps user name to bearer token.
	Tokens map[string]string `json:"tokens"`
	CAPEM  []byte            `json:"caPEM"`

	opts Options
	pki  *pki
	mu   sync.Mutex
}

// EtcdCert is a client certificate for etcd.
type EtcdCert struct {
	CertFile string `json:"certFile"`
	KeyFile  string `json:"keyFile"`
}

// EtcdFlags are the flags that connect a Rotor process to the sandbox's
// etcd as its root (or its one client certificate, without EtcdAuth).
func (e *Env) EtcdFlags() []string { return e.etcdFlags("").Args() }

// EtcdFlagsAs are the flags that connect a process as etcd user user
// (etcdroles.Manager or etcdroles.Propeller) when the sandbox has one,
// as EtcdFlags otherwise.
func (e *Env) EtcdFlagsAs(user string) []string { return e.etcdFlags(user).Args() }

// EtcdClient connects to the sandbox's etcd with its client certificate
// when it serves TLS.
func (e *Env) EtcdClient() (*clientv3.Client, error) { return e.etcdFlags("").New() }

// EtcdClientAs connects as etcd user user (Options.EtcdAuth).
func (e *Env) EtcdClientAs(user string) (*clientv3.Client, error) {
	if _, ok := e.EtcdUsers[user]; !ok {
		return nil, fmt.Errorf("the sandbox has no etcd user %q (Options.EtcdAuth)", user)
	}
	return e.etcdFlags(user).New()
}

// etcdFlags connect as etcd user user when the sandbox has it, else as
// etcd's root (or the one client certificate, without EtcdAuth).
func (e *Env) etcdFlags(user string) *etcdclient.Flags {
	f := &etcdclient.Flags{Endpoints: e.EtcdEndpoint, CAFile: e.EtcdCAFile, CertFile: e.EtcdCertFile, KeyFile: e.EtcdKeyFile}
	if c, ok := e.EtcdUsers[user]; ok {
		f.CertFile, f.KeyFile = c.CertFile, c.KeyFile
	}
	return f
}

// StateFile is where an environment's state is saved.
func StateFile(dir string) string { return filepath.Join(dir, "state.json") }

// Start brings up etcd, the control cluster and the targets, and returns
// when every apiserver is ready, the CRDs are established and every target
// has Ready nodes. On error everything started so far is stopped.
func Start(ctx context.Context, opts Options) (_ *Env, err error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	e := &Env{Dir: opts.Dir, opts: opts, Tokens: map[string]string{}}
	defer func() {
		if err != nil {
			e.Stop()
		}
	}()
	for _, d := range []string{"logs", "pki", "kubeconfigs", "data"} {
		if err := os.MkdirAll(filepath.Join(opts.Dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	if e.pki, err = writePKI(filepath.Join(opts.Dir, "pki")); err != nil {
		return nil, err
	}
	e.CAPEM = e.pki.CAPEM
	if err := e.writeUsers(); err != nil {
		return nil, err
	}
	if err := e.startEtcd(ctx); err != nil {
		return nil, err
	}
	if err := e.startAPIServers(ctx); err != nil {
		return nil, err
	}
	if opts.CRDDir != "" {
		if err := installCRDs(ctx, e.Control.Kubeconfig, opts.CRDDir); err != nil {
			return nil, err
		}
	}
	if e.runsPods() {
		if err := e.startControlWorkloads(ctx); err != nil {
			return nil, err
		}
	}
	if err := e.startTargetsRuntime(ctx); err != nil {
		return nil, err
	}
	return e, e.Save()
}

func (e *Env) writeUsers() error {
	users := []user{{Name: "rotor-admin", Token: newToken(), Groups: []string{"system:masters"}}}
	for _, name := range e.opts.Users {
		users = append(users, user{Name: name, Token: newToken(), Groups: []string{"system:masters", "rotor:components"}})
	}
	if e.runsPods() {
		for _, name := range []string{UserNodeAgent, UserScheduler, UserControllerManager, UserInstaller} {
			users = append(users, user{Name: name, Token: newToken(), Groups: []string{"system:masters"}})
		}
	}
	for _, u := range users {
		e.Tokens[u.Name] = u.Token
	}
	return writeTokenFile(filepath.Join(e.Dir, "pki", "tokens.csv"), users)
}

// KubeconfigFor writes (once) and returns a kubeconfig for user on cluster.
func (e *Env) KubeconfigFor(c ClusterInfo, userName string) (string, error) {
	tok, ok := e.Tokens[userName]
	if !ok {
		return "", fmt.Errorf("localcluster: no user %q: add it to Options.Users", userName)
	}
	path := filepath.Join(e.Dir, "kubeconfigs", c.Name+"-"+userName+".yaml")
	data, err := kubeconfig(c.Name, c.Server, e.CAPEM, user{Name: userName, Token: tok})
	if err != nil {
		return "", err
	}
	return path, os.WriteFile(path, data, 0o600)
}

func (e *Env) track(p *Process) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.Processes = append(e.Processes, p)
}

// Process returns the most recently started process of that name (a
// replica restarted under its name appears twice in Processes).
func (e *Env) Process(name string) (*Process, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := len(e.Processes) - 1; i >= 0; i-- {
		if e.Processes[i].Name == name {
			return e.Processes[i], nil
		}
	}
	return nil, fmt.Errorf("no process %s in this environment", name)
}

// Track adds a process started by the caller (a Rotor component) so that
// Stop and the saved state include it.
func (e *Env) Track(p *Process) { e.track(p); _ = e.Save() }

// StartProcess starts a component binary from BinDir with its log beside
// the others, and tracks it.
func (e *Env) StartProcess(name, bin string, args, env []string) (*Process, error) {
	p, err := startProcess(name, filepath.Join(e.opts.BinDir, bin), args, env, filepath.Join(e.Dir, "logs"))
	if err != nil {
		return nil, err
	}
	e.Track(p)
	return p, nil
}

// Save writes state.json.
func (e *Env) Save() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(StateFile(e.Dir), b, 0o600)
}

// Load reads a saved environment; its processes can be stopped but not
// waited for.
func Load(dir string) (*Env, error) {
	b, err := os.ReadFile(StateFile(dir))
	if err != nil {
		return nil, err
	}
	e := &Env{}
	if err := json.Unmarshal(b, e); err != nil {
		return nil, fmt.Errorf("read %s: %w", StateFile(dir), err)
	}
	return e, nil
}

// Stop ends every process, newest first, so Rotor and the node runtimes go
// before the apiservers, and those before etcd.
func (e *Env) Stop() {
	e.mu.Lock()
	procs := append([]*Process(nil), e.Processes...)
	e.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].Stop(5 * time.Second)
	}
}

// Logs lists every component's log file.
func (e *Env) Logs() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, p := range e.Processes {
		out = append(out, p.Log)
	}
	return out
}
