// Package http is the plugin for tasks that call an HTTP endpoint instead
// of running a pod. A 2xx answer whose JSON object holds the task's
// outputs ends the attempt. An answer {"statusURL": "..."} starts an
// asynchronous call: the plugin polls that URL until it answers
// {"state": "succeeded", "outputs": {...}} or {"state": "failed",
// "message": "..."}; {"state": "running"} keeps it waiting. A
// "cancelURL" in the first answer is POSTed when the attempt is aborted.
//
// Requests carry an Idempotency-Key header unique to the attempt. The
// answer to the first request of an attempt is kept in a Journal under
// that key, so a round redone after its status write was lost replays it
// instead of calling again; a request is still repeated if the engine dies
// between the answer and the journal's write (see Journal). 4xx answers
// fail the attempt (the task's fault, retried with its retries); network
// errors and 5xx answers are system failures.
//
// A task calls nothing unless its URL is under a prefix the install allows
// (Config.AllowedURLPrefixes) or its namespace does (the
// AnnotationAllowedURLPrefixes annotation): the engine runs inside the
// platform's network, so an open http task would let any tenant reach any
// internal service. The same check covers status URLs, cancel URLs and
// every redirect.
package http

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	nethttp "net/http"
	"net/url"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/clock"

	"github.com/rotor-dev/rotor/controller/template"
	"github.com/rotor-dev/rotor/data/offload"
	"github.com/rotor-dev/rotor/internal/logctx"
	"github.com/rotor-dev/rotor/plugins"
)

// Config holds the plugin's settings.
type Config struct {
	// AllowedURLPrefixes are the URL prefixes every tenant's tasks may
	// call. None: tasks call only what their namespace allows.
	AllowedURLPrefixes []Prefix
	// NamespaceAnnotations reads a control-cluster namespace's annotations,
	// where AnnotationAllowedURLPrefixes adds a tenant's own prefixes (nil
	// or an unknown namespace: none).
	NamespaceAnnotations func(namespace string) map[string]string
	// Timeout bounds one request (default 30s).
	Timeout time.Duration
	// Journal keeps the answers to first requests (default: in this
	// process only, for LocalJournalTTL).
	Journal Journal
	// Secrets reads the Secrets of spec.http.secretHeaders (nil: tasks
	// with secret headers fail, naming the setting).
	Secrets plugins.SecretReader
}

// The process-local journal's bounds: long enough for any redone round
// (a status write retried through an outage of the control plane), small
// enough to stay a few MiB.
const (
	LocalJournalTTL = 30 * time.Minute
	LocalJournalMax = 20000
)

// Plugin calls HTTP endpoints.
type Plugin struct {
	cfg    Config
	policy policy
	client *nethttp.Client
}

// New returns the http plugin.
func New(cfg Config) *Plugin {
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Journal == nil {
		cfg.Journal = NewMemoryJournal(clock.RealClock{}, LocalJournalTTL, LocalJournalMax)
	}
	p := &Plugin{cfg: cfg, policy: policy{install: cfg.AllowedURLPrefixes, annotations: cfg.NamespaceAnnotations}}
	p.client = &nethttp.Client{Timeout: cfg.Timeout, CheckRedirect: func(req *nethttp.Request, via []*nethttp.Request) error {
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		// A redirect is a call to another URL: an allowed endpoint
		// must not be a way to reach one that is not.
		if err := p.policy.check(namespaceOf(req.Context()), req.URL.String()); err != nil {
			return fmt.Errorf("redirected: %w", err)
		}
		return nil
	}}
	return p
}

// Type implements plugins.Plugin.
func (*Plugin) Type() string { return "http" }

// ClusterFree implements plugins.ClusterFree: no pod, no placement.
func (*Plugin) ClusterFree() bool { return true }

// state is what the plugin keeps between rounds of an asynchronous call.
type state struct {
	StatusURL string `json:"statusURL,omitempty"`
	CancelURL string `json:"cancelURL,omitempty"`
}

// answer is the JSON an endpoint replies with.
type answer struct {
	StatusURL string          `json:"statusURL"`
	CancelURL string          `json:"cancelURL"`
	State     string          `json:"state"`
	Outputs   json.RawMessage `json:"outputs"`
	Message   string          `json:"message"`
}

// Handle makes the call, or polls an asynchronous one.
func (p *Plugin) Handle(ctx context.Context, tc *plugins.TaskContext) (plugins.PhaseInfo, error) {
	spec := tc.Task.HTTP
	if spec == nil {
		return plugins.PhaseInfo{Phase: plugins.PhaseFailed, Reason: "BadTask", Message: "an http task needs http: {url: ...}"}, nil
	}
	ctx = withNamespace(ctx, tc.ID.Namespace)
	var st state
	if tc.State != "" {
		_ = json.Unmarshal([]byte(tc.State), &st)
	}
	if st.StatusURL != "" {
		return p.poll(ctx, tc, st)
	}
	key := idempotencyKey(tc)
	if a, ok, err := p.cfg.Journal.Lookup(ctx, key); ok {
		replayed.Inc()
		logctx.From(ctx).Info("http call answered from the journal: its round was redone", "key", key, "phase", a.Phase.String())
		return a.info(), nil
	} else if err != nil {
		// Unreadable means etcd is away, and a replica cut off from etcd
		// is about to lose its lease: a call made now would likely have
		// neither its journal entry nor its status write, and the next
		// owner would call again (the chaos soak saw it). Wait for etcd
		// instead: the round is retried.
		return plugins.PhaseInfo{}, fmt.Errorf("http call %s not made: its call journal is unreadable (%w); retrying once etcd answers, rather than risk calling twice", key, err)
	}
	req, secrets, err := p.request(ctx, tc)
	if err != nil {
		return requestFailed(err)
	}
	// The journal lookup and the Secret reads above take network round
	// trips; a replica that lost its partition meanwhile must not call:
	// the new owner calls too.
	if err := tc.Fenced(); err != nil {
		return plugins.PhaseInfo{}, err
	}
	info := p.first(req, pollInterval(tc))
	info.Message = redactSecrets(info.Message, secrets)
	// An error because this round was cancelled says nothing about the
	// endpoint: leave the key unanswered so whoever redoes the round calls.
	if ctx.Err() == nil {
		if err := p.cfg.Journal.Record(ctx, key, answerOf(info)); err != nil {
			logctx.From(ctx).Warn("http call journal not written; the call is repeated if this round's status write is lost", "key", key, "err", err)
		}
	}
	return info, nil
}

// first makes an attempt's first request and says how it ended.
func (p *Plugin) first(req *nethttp.Request, pollAfter time.Duration) plugins.PhaseInfo {
	body, info, ok := p.do(req)
	if !ok {
		return info
	}
	var a answer
	if err := json.Unmarshal(body, &a); err == nil && a.StatusURL != "" {
		if err := p.policy.check(namespaceOf(req.Context()), a.StatusURL); err != nil {
			return plugins.PhaseInfo{Phase: plugins.PhaseFailed, Reason: ReasonURLNotAllowed, Message: "the answer's statusURL: " + err.Error()}
		}
		b, _ := json.Marshal(state{StatusURL: a.StatusURL, CancelURL: a.CancelURL})
		return plugins.PhaseInfo{Phase: plugins.PhaseRunning, Message: "polling " + a.StatusURL, Resource: "http",
			State: string(b), CheckAfter: pollAfter}
	}
	return plugins.PhaseInfo{Phase: plugins.PhaseSucceeded, Outputs: body, Resource: "http"}
}

func pollInterval(tc *plugins.TaskContext) time.Duration {
	if d := tc.Task.HTTP.PollInterval; d != nil && d.Duration > 0 {
		return d.Duration
	}
	return 2 * time.Second
}

func (p *Plugin) poll(ctx context.Context, tc *plugins.TaskContext, st state) (plugins.PhaseInfo, error) {
	// Checked again at every poll: the policy may have been narrowed
	// since the call began.
	if err := p.policy.check(tc.ID.Namespace, st.StatusURL); err != nil {
		return plugins.PhaseInfo{Phase: plugins.PhaseFailed, Reason: ReasonURLNotAllowed, Message: "statusURL: " + err.Error()}, nil
	}
	req, err := nethttp.NewRequestWithContext(ctx, nethttp.MethodGet, st.StatusURL, nil)
	if err != nil {
		return plugins.PhaseInfo{Phase: plugins.PhaseFailed, Reason: "BadAnswer", Message: err.Error()}, nil
	}
	req.Header.Set("Idempotency-Key", idempotencyKey(tc))
	secrets, err := p.originHeaders(ctx, tc, req)
	if err != nil {
		return requestFailed(err)
	}
	body, info, ok := p.do(req)
	if !ok {
		info.Message = redactSecrets(info.Message, secrets)
		return info, nil
	}
	var a answer
	if err := json.Unmarshal(body, &a); err != nil {
		return plugins.PhaseInfo{Phase: plugins.PhaseFailed, Reason: "BadAnswer", Message: redactSecrets(fmt.Sprintf("status answer is not JSON: %q", excerpt(body)), secrets)}, nil
	}
	a.Message = redactSecrets(a.Message, secrets)
	switch strings.ToLower(a.State) {
	case "succeeded":
		return plugins.PhaseInfo{Phase: plugins.PhaseSucceeded, Outputs: a.Outputs, Resource: "http"}, nil
	case "failed":
		return plugins.PhaseInfo{Phase: plugins.PhaseFailed, Reason: "CallFailed", Message: "the endpoint reported failure: " + a.Message}, nil
	case "running", "pending", "":
		return plugins.PhaseInfo{Phase: plugins.PhaseRunning, Message: "polling " + st.StatusURL, CheckAfter: pollInterval(tc)}, nil
	}
	return plugins.PhaseInfo{Phase: plugins.PhaseFailed, Reason: "BadAnswer", Message: fmt.Sprintf("unknown state %q: want running, succeeded or failed", a.State)}, nil
}

// do sends req; ok is false when info already says how the attempt ended.
func (p *Plugin) do(req *nethttp.Request) (body []byte, info plugins.PhaseInfo, ok bool) {
	resp, err := p.client.Do(req)
	if err != nil {
		if na, ok := isNotAllowed(err); ok {
			return nil, plugins.PhaseInfo{Phase: plugins.PhaseFailed, Reason: ReasonURLNotAllowed,
				Message: fmt.Sprintf("%s %s: redirected: %s", req.Method, req.URL, na)}, false
		}
		return nil, plugins.PhaseInfo{Phase: plugins.PhaseSystemFailed, Reason: "CallError", Message: fmt.Sprintf("%s %s: %v", req.Method, req.URL, err)}, false
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, plugins.PhaseInfo{Phase: plugins.PhaseSystemFailed, Reason: "CallError", Message: err.Error()}, false
	}
	switch {
	case resp.StatusCode >= 500:
		return nil, plugins.PhaseInfo{Phase: plugins.PhaseSystemFailed, Reason: "ServerError",
			Message: fmt.Sprintf("%s %s answered %d: %s", req.Method, req.URL, resp.StatusCode, excerpt(body))}, false
	case resp.StatusCode >= 300:
		return nil, plugins.PhaseInfo{Phase: plugins.PhaseFailed, Reason: "HTTPError",
			Message: fmt.Sprintf("%s %s answered %d: %s", req.Method, req.URL, resp.StatusCode, excerpt(body))}, false
	}
	return body, plugins.PhaseInfo{}, true
}

// request builds the attempt's first request, with its secret headers, and
// returns the secret values it used (to redact from messages). Its errors
// are sorted by requestFailed.
func (p *Plugin) request(ctx context.Context, tc *plugins.TaskContext) (*nethttp.Request, []string, error) {
	spec := tc.Task.HTTP
	render := func(s string) (string, error) {
		t, err := template.Parse(s)
		if err != nil {
			return "", err
		}
		return t.RenderString(func(r template.Ref) (json.RawMessage, error) {
			if r.Kind != template.TaskInput {
				return nil, fmt.Errorf("{{%s}} has no value", r)
			}
			v, ok, err := tc.Input(ctx, r.Name)
			if !ok {
				return nil, fmt.Errorf("{{%s}} has no value", r)
			}
			return v, err
		})
	}
	url, err := render(spec.URL)
	if err != nil {
		return nil, nil, fmt.Errorf("url: %w", err)
	}
	if err := p.policy.check(tc.ID.Namespace, url); err != nil {
		return nil, nil, err
	}
	method := spec.Method
	if method == "" {
		method = nethttp.MethodPost
	}
	var body io.Reader
	if method != nethttp.MethodGet {
		b := spec.Body
		if b == "" {
			all := make(map[string]json.RawMessage, len(tc.Inputs))
			for k := range tc.Inputs {
				if all[k], _, err = tc.Input(ctx, k); err != nil {
					return nil, nil, fmt.Errorf("input %s: %w", k, err)
				}
			}
			raw, _ := json.Marshal(all)
			b = string(raw)
		} else if b, err = render(b); err != nil {
			return nil, nil, fmt.Errorf("body: %w", err)
		}
		body = strings.NewReader(b)
	}
	req, err := nethttp.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", idempotencyKey(tc))
	for k, v := range spec.Headers {
		if v, err = render(v); err != nil {
			return nil, nil, fmt.Errorf("header %s: %w", k, err)
		}
		req.Header.Set(k, v)
	}
	secrets, err := p.secretHeaders(ctx, tc, req.Header)
	if err != nil {
		return nil, nil, err
	}
	return req, secrets, nil
}

// secretMissing is a request that cannot be made: a Secret or key of
// spec.http.secretHeaders does not exist (or this install reads none).
type secretMissing struct{ msg string }

func (e *secretMissing) Error() string { return e.msg }

// secretUnreadable is a Secret the apiserver did not give: the round is
// retried.
type secretUnreadable struct{ err error }

func (e *secretUnreadable) Error() string { return e.err.Error() }
func (e *secretUnreadable) Unwrap() error { return e.err }

// requestFailed says how an attempt ends when its request could not be
// built: a retried round for an unreadable Secret, else a failure with
// the reason of what was wrong.
func requestFailed(err error) (plugins.PhaseInfo, error) {
	var unreadable *secretUnreadable
	var storeDown *offload.Unavailable
	if errors.As(err, &unreadable) || errors.As(err, &storeDown) {
		return plugins.PhaseInfo{}, err // retried: neither is the task's fault
	}
	reason := "BadRequest"
	var missing *secretMissing
	if _, ok := isNotAllowed(err); ok {
		reason = ReasonURLNotAllowed
	} else if errors.As(err, &missing) {
		reason = plugins.ReasonSecretNotFound
	}
	return plugins.PhaseInfo{Phase: plugins.PhaseFailed, Reason: reason, Message: err.Error()}, nil
}

// secretHeaders sets the headers of spec.http.secretHeaders on h from the
// workflow namespace's Secrets, read at every request (a rotated Secret is
// used at once), and returns their values. The values go into request
// headers only: messages built from an answer are passed through
// redactSecrets, so an endpoint echoing a header does not put it into the
// workflow's status.
func (p *Plugin) secretHeaders(ctx context.Context, tc *plugins.TaskContext, h nethttp.Header) ([]string, error) {
	var values []string
	for _, sh := range tc.Task.HTTP.SecretHeaders {
		ref := sh.SecretKeyRef
		if p.cfg.Secrets == nil {
			return nil, &secretMissing{fmt.Sprintf("header %s comes from secret %q, but this install reads no Secrets (rotor-propeller --tenant-secrets=false)", sh.Name, ref.Name)}
		}
		s, err := p.cfg.Secrets.Secret(ctx, tc.ID.Namespace, ref.Name)
		if apierrors.IsNotFound(err) {
			return nil, &secretMissing{fmt.Sprintf("header %s: secret %q not found in namespace %s", sh.Name, ref.Name, tc.ID.Namespace)}
		}
		if err != nil {
			return nil, &secretUnreadable{fmt.Errorf("header %s: read secret %s/%s: %w", sh.Name, tc.ID.Namespace, ref.Name, err)}
		}
		v, ok := s.Data[ref.Key]
		if !ok {
			return nil, &secretMissing{fmt.Sprintf("header %s: secret %q in namespace %s has no key %q", sh.Name, ref.Name, tc.ID.Namespace, ref.Key)}
		}
		h.Set(sh.Name, sh.Prefix+string(v))
		if len(v) > 0 {
			values = append(values, string(v))
		}
	}
	return values, nil
}

// redactSecrets replaces every secret value in a message.
func redactSecrets(msg string, values []string) string {
	for _, v := range values {
		msg = strings.ReplaceAll(msg, v, "[redacted]")
	}
	return msg
}

// sameOrigin says whether two URLs share scheme, host and port: polls and
// cancels send the task's headers (its credentials) only to the origin
// the task itself calls, as a browser would.
func sameOrigin(a, b *url.URL) bool {
	return a.Scheme == b.Scheme && strings.EqualFold(a.Host, b.Host)
}

// originHeaders adds the task's headers, plain and secret, to a poll or a
// cancel of an asynchronous call whose URL has the origin of the task's
// own URL (the endpoint that authenticated the call checks its status),
// and nothing to one elsewhere, or when the task's own request can no
// longer be built for a reason other than its Secrets (its URL no longer
// allowed, say: the poll's URL was checked on its own).
func (p *Plugin) originHeaders(ctx context.Context, tc *plugins.TaskContext, req *nethttp.Request) ([]string, error) {
	first, secrets, err := p.request(ctx, tc)
	var missing *secretMissing
	var unreadable *secretUnreadable
	if errors.As(err, &missing) || errors.As(err, &unreadable) {
		return nil, err
	}
	if err != nil || !sameOrigin(first.URL, req.URL) {
		return nil, nil
	}
	for k, v := range first.Header {
		if k != "Content-Type" && k != "Idempotency-Key" {
			req.Header[k] = v
		}
	}
	return secrets, nil
}

func idempotencyKey(tc *plugins.TaskContext) string {
	return fmt.Sprintf("%s/%s/%d", tc.ID.WorkflowUID, tc.ID.Node, tc.ID.Attempt)
}

func excerpt(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// Abort POSTs the cancel URL of an asynchronous call, if it gave one.
func (p *Plugin) Abort(ctx context.Context, tc *plugins.TaskContext) error {
	var st state
	if tc.State == "" || json.Unmarshal([]byte(tc.State), &st) != nil || st.CancelURL == "" {
		return nil
	}
	ctx = withNamespace(ctx, tc.ID.Namespace)
	if err := p.policy.check(tc.ID.Namespace, st.CancelURL); err != nil {
		// Not an error to retry: no later abort would be allowed either.
		// The endpoint's call runs on until it ends by itself.
		logctx.From(ctx).Warn("http call not cancelled: its cancelURL is not allowed", "err", err)
		return nil
	}
	req, err := nethttp.NewRequestWithContext(ctx, nethttp.MethodPost, st.CancelURL, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Idempotency-Key", idempotencyKey(tc))
	var missing *secretMissing
	if _, err := p.originHeaders(ctx, tc, req); errors.As(err, &missing) {
		// The Secret is gone: cancel without it rather than not at all.
		logctx.From(ctx).Warn("http call cancelled without its secret headers", "reason", err.Error())
	} else if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("cancel %s: %w", st.CancelURL, err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode != nethttp.StatusNotFound {
		return errors.New("cancel " + st.CancelURL + ": " + resp.Status)
	}
	return nil
}

// Finalize holds nothing.
func (p *Plugin) Finalize(context.Context, *plugins.TaskContext) error { return nil }
