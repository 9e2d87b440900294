package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	nethttp "net/http"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	versioned "github.com/rotor-dev/rotor/controller/generated/clientset/versioned"
	"github.com/rotor-dev/rotor/controller/generated/informers/externalversions"
	"github.com/rotor-dev/rotor/controller/manifest"
	"github.com/rotor-dev/rotor/e2e/chaos"
)

// adder is the http tasks' endpoint: POST /add with {"a": A, "b": B}
// answers {"v": A+B}, and counts the calls per Idempotency-Key.
type adder struct {
	mu    sync.Mutex
	calls map[string]chaos.CallSpan
	bad   int // requests without a key or with a body it could not read
	srv   *nethttp.Server
	base  string
}

func startAdder() (*adder, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for the http tasks' server: %w", err)
	}
	a := &adder{calls: map[string]chaos.CallSpan{}, base: "http://" + l.Addr().String()}
	mux := nethttp.NewServeMux()
	mux.HandleFunc("/add", a.add)
	a.srv = &nethttp.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = a.srv.Serve(l) }()
	return a, nil
}

func (a *adder) add(w nethttp.ResponseWriter, r *nethttp.Request) {
	key := r.Header.Get("Idempotency-Key")
	var in struct{ A, B int }
	err := json.NewDecoder(r.Body).Decode(&in)
	a.mu.Lock()
	if key == "" || err != nil {
		a.bad++
	} else {
		c := a.calls[key]
		if c.Calls == 0 {
			c.First = time.Now()
		}
		c.Calls, c.Last = c.Calls+1, time.Now()
		a.calls[key] = c
	}
	a.mu.Unlock()
	if err != nil {
		nethttp.Error(w, "body: "+err.Error(), nethttp.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"v": %d}`, in.A+in.B)
}

func (a *adder) snapshot() (map[string]chaos.CallSpan, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]chaos.CallSpan, len(a.calls))
	for k, v := range a.calls {
		out[k] = v
	}
	return out, a.bad
}

// load submits workflows and follows them through an informer.
type load struct {
	rotor      versioned.Interface
	workload   *chaos.Workload
	namespaces []string
	inflight   int

	mu        sync.Mutex
	expected  []chaos.Expectation
	ended     map[string]bool
	lastEnd   time.Time
	updates   int      // Workflow updates the informer saw
	epochBack []string // updates whose shardEpoch went back
	submitErr int
}

func newLoad(rotor versioned.Interface, w *chaos.Workload, namespaces []string, inflight int) *load {
	return &load{rotor: rotor, workload: w, namespaces: namespaces, inflight: inflight, ended: map[string]bool{}}
}

// watch runs a Workflow informer over every namespace until stop, marking
// workflows that ended.
func (l *load) watch(stop <-chan struct{}) error {
	f := externalversions.NewSharedInformerFactory(l.rotor, 0)
	inf := f.Rotor().V1alpha1().Workflows().Informer()
	seen := func(obj any) {
		wf, ok := obj.(*v1alpha1.Workflow)
		if !ok || !wf.Status.Phase.IsTerminal() {
			return
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		k := wf.Namespace + "/" + wf.Name
		if !l.ended[k] {
			l.ended[k] = true
			l.lastEnd = time.Now()
		}
	}
	// A partition's epoch only grows, and a namespace stays in its
	// partition: a status carrying a lower epoch than the version before
	// was written by an owner that had been fenced.
	epoch := func(o, n any) {
		ow, ok1 := o.(*v1alpha1.Workflow)
		nw, ok2 := n.(*v1alpha1.Workflow)
		if !ok1 || !ok2 || ow.ResourceVersion == nw.ResourceVersion {
			return
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		l.updates++
		if nw.Status.ShardEpoch < ow.Status.ShardEpoch {
			l.epochBack = append(l.epochBack, fmt.Sprintf("%s/%s: shardEpoch %d after %d (resourceVersion %s → %s)",
				nw.Namespace, nw.Name, nw.Status.ShardEpoch, ow.Status.ShardEpoch, ow.ResourceVersion, nw.ResourceVersion))
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: seen, UpdateFunc: func(o, n any) { epoch(o, n); seen(n) }}); err != nil {
		return err
	}
	f.Start(stop)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return fmt.Errorf("the soak's Workflow informer did not sync in 60 s")
	}
	return nil
}

// epochs returns how many updates the informer saw and those whose epoch
// went back.
func (l *load) epochs() (int, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.updates, append([]string(nil), l.epochBack...)
}

func (l *load) lastEnded() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastEnd
}

// counts returns submitted and ended.
func (l *load) counts() (int, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.expected {
		if l.ended[e.Key()] {
			n++
		}
	}
	return len(l.expected), n
}

// run keeps l.inflight workflows running until ctx ends.
func (l *load) run(ctx context.Context) {
	for ctx.Err() == nil {
		submitted, ended := l.counts()
		if submitted-ended >= l.inflight {
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		spec, exp := l.workload.Next(l.namespaces)
		if err := l.submit(ctx, spec, exp); err != nil {
			say("submit %s: %v", exp.Key(), err)
			l.mu.Lock()
			l.submitErr++
			l.mu.Unlock()
		}
	}
}

// submit creates one workflow, retrying for up to a minute while the
// control plane is down; AlreadyExists after a retry means an earlier try
// got through.
func (l *load) submit(ctx context.Context, spec string, exp chaos.Expectation) error {
	wf := &v1alpha1.Workflow{}
	if err := manifest.Unmarshal([]byte(spec), wf); err != nil {
		return fmt.Errorf("the workload made a bad spec: %w\n%s", err, spec)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := l.rotor.RotorV1alpha1().Workflows(exp.Namespace).Create(cctx, wf, metav1.CreateOptions{})
		cancel()
		if err == nil || apierrors.IsAlreadyExists(err) {
			l.mu.Lock()
			l.expected = append(l.expected, exp)
			l.mu.Unlock()
			return nil
		}
		if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) {
			return fmt.Errorf("rejected: %w", err)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			// It may exist after all: the check at the end would then
			// find a workflow nobody expects, which is harmless.
			return fmt.Errorf("not created within a minute: %w", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (l *load) expectations() []chaos.Expectation {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]chaos.Expectation(nil), l.expected...)
}
