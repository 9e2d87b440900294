package http

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"

	"github.com/rotor-dev/rotor/plugins"
)

// A Journal remembers the answer to each call by its idempotency key.
//
// Why: the engine records an answer only when the round that got it writes
// the Workflow's status. When that write is lost (a conflict with a newer
// version, the control apiserver away, the partition handed to another
// replica mid-round) the round is redone from the older status, which has
// no answer, and without a journal it calls the endpoint again with the
// same key. With one, the redone round replays the answer. A call is
// still repeated if the process dies between the endpoint's answer and the
// journal's write (milliseconds), or if neither the journal nor the status
// could be written: http tasks stay at-least-once, with the key to dedupe.
type Journal interface {
	// Lookup returns the answer recorded for key, if any.
	Lookup(ctx context.Context, key string) (Answer, bool, error)
	// Record stores the answer to key.
	Record(ctx context.Context, key string, a Answer) error
}

// Answer is how a call ended, as the plugin reported it.
type Answer struct {
	Phase      plugins.Phase   `json:"phase"`
	Reason     string          `json:"reason,omitempty"`
	Message    string          `json:"message,omitempty"`
	Outputs    json.RawMessage `json:"outputs,omitempty"`
	State      string          `json:"state,omitempty"`
	CheckAfter time.Duration   `json:"checkAfter,omitempty"`
}

func answerOf(info plugins.PhaseInfo) Answer {
	return Answer{Phase: info.Phase, Reason: info.Reason, Message: info.Message, Outputs: info.Outputs,
		State: info.State, CheckAfter: info.CheckAfter}
}

func (a Answer) info() plugins.PhaseInfo {
	info := plugins.PhaseInfo{Phase: a.Phase, Reason: a.Reason, Message: a.Message, Outputs: a.Outputs,
		State: a.State, CheckAfter: a.CheckAfter}
	if a.Phase == plugins.PhaseSucceeded || a.State != "" {
		info.Resource = "http"
	}
	return info
}

var (
	replayed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "rotor_http_calls_replayed_total",
		Help: "http task calls answered from the call journal instead of calling the endpoint again (a round redone after its status write was lost).",
	})
	journalErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rotor_http_journal_errors_total",
		Help: "Failed reads and writes of the shared call journal (etcd), by op (lookup, record): each is a call that may be repeated.",
	}, []string{"op"})
)

func init() { prometheus.MustRegister(replayed, journalErrors) }

// MemoryJournal keeps answers in this process for a while: enough for a
// round redone here after a conflict or an outage of the control plane.
// It holds at most max answers, dropping the oldest first.
type MemoryJournal struct {
	clock clock.PassiveClock
	ttl   time.Duration
	max   int

	mu      sync.Mutex
	answers map[string]memEntry
	order   []string // keys in recording order, for expiry
}

type memEntry struct {
	a  Answer
	at time.Time
}

// NewMemoryJournal keeps up to max answers for ttl each.
func NewMemoryJournal(c clock.PassiveClock, ttl time.Duration, max int) *MemoryJournal {
	return &MemoryJournal{clock: c, ttl: ttl, max: max, answers: map[string]memEntry{}}
}

// Lookup implements Journal.
func (j *MemoryJournal) Lookup(_ context.Context, key string) (Answer, bool, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	e, ok := j.answers[key]
	if !ok || j.clock.Since(e.at) > j.ttl {
		return Answer{}, false, nil
	}
	return e.a, true, nil
}

// Record implements Journal.
func (j *MemoryJournal) Record(_ context.Context, key string, a Answer) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	now := j.clock.Now()
	if _, ok := j.answers[key]; !ok {
		j.order = append(j.order, key)
	}
	j.answers[key] = memEntry{a: a, at: now}
	// Drop from the front what expired or is over the bound. A key
	// recorded again keeps its first place in order; it is then dropped
	// a little early, which costs at worst one repeated call.
	n := 0
	for n < len(j.order) && (len(j.order)-n > j.max || now.Sub(j.answers[j.order[n]].at) > j.ttl) {
		delete(j.answers, j.order[n])
		n++
	}
	if n > 0 {
		j.order = append(j.order[:0:0], j.order[n:]...)
	}
	return nil
}

// Len is how many answers are held.
func (j *MemoryJournal) Len() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.answers)
}

// Layered reads and writes a process-local journal first and a shared one
// (etcd) second, so most replays cost no round trip and a replica that
// takes over a partition still finds the answers its predecessor got.
// Shared failures are counted and returned; the plugin defers a call whose
// lookup failed and goes on after a failed record. The shared journal
// bounds its own operations (etcdjournal: a second).
type Layered struct {
	Local  Journal
	Shared Journal
}

// Lookup implements Journal.
func (l Layered) Lookup(ctx context.Context, key string) (Answer, bool, error) {
	if a, ok, _ := l.Local.Lookup(ctx, key); ok {
		return a, true, nil
	}
	if l.Shared == nil {
		return Answer{}, false, nil
	}
	a, ok, err := l.Shared.Lookup(ctx, key)
	if err != nil {
		journalErrors.WithLabelValues("lookup").Inc()
		return Answer{}, false, err
	}
	return a, ok, nil
}

// Record implements Journal.
func (l Layered) Record(ctx context.Context, key string, a Answer) error {
	_ = l.Local.Record(ctx, key, a)
	if l.Shared == nil {
		return nil
	}
	if err := l.Shared.Record(ctx, key, a); err != nil {
		journalErrors.WithLabelValues("record").Inc()
		return err
	}
	return nil
}
