package table

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/rotor-dev/rotor/shardproto"
)

// doc builds a shard map of n partitions from entries "P=OWNER@EPOCH"
// or, for a release request, "P=OWNER@EPOCH>NEXT#ASKED".
func doc(t *testing.T, n int, entries ...string) *shardproto.Doc {
	t.Helper()
	d := &shardproto.Doc{Partitions: n, Map: make(shardproto.Map, n)}
	for _, e := range entries {
		var p, asked int
		var owner, next string
		var epoch int64
		head, req, _ := strings.Cut(e, ">")
		if _, err := fmt.Sscanf(strings.NewReplacer("=", " ", "@", " ").Replace(head), "%d %s %d", &p, &owner, &epoch); err != nil {
			t.Fatalf("entry %q: %v", e, err)
		}
		if req != "" {
			nx, a, _ := strings.Cut(req, "#")
			next = nx
			asked, _ = strconv.Atoi(a)
		}
		d.Map[p] = shardproto.Partition{Owner: owner, Epoch: epoch, Next: next, Asked: int64(asked)}
	}
	return d
}

// String renders actions as the scenarios spell them.
func (a Actions) String() string {
	var parts []string
	if len(a.Started) > 0 {
		var s []string
		for _, g := range a.Started {
			s = append(s, fmt.Sprintf("%d@%d", g.Partition, g.Epoch))
		}
		parts = append(parts, "start "+strings.Join(s, ","))
	}
	if len(a.Stopped) > 0 {
		parts = append(parts, "stop "+strings.Trim(strings.Join(strings.Fields(fmt.Sprint(a.Stopped)), ","), "[]"))
	}
	if len(a.Acks) > 0 {
		var s []string
		for _, r := range a.Acks {
			s = append(s, fmt.Sprintf("%d@%d#%d", r.Partition, r.Ack.Epoch, r.Ack.Asked))
		}
		parts = append(parts, "ack "+strings.Join(s, ","))
	}
	if a.Err != nil {
		parts = append(parts, "err")
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, "; ")
}

// step is one event of a scenario and what must come of it.
type step struct {
	// op is one of: apply (with m and valid), acquire P, done P,
	// fence P SEEN, ackfail P EPOCH ASKED, holds P.
	op    string
	m     []string
	valid bool
	want  string
}

func run(t *testing.T, tb *Table, n int, steps []step) {
	t.Helper()
	for i, s := range steps {
		f := strings.Fields(s.op)
		arg := func(k int) int {
			v, err := strconv.Atoi(f[k])
			if err != nil {
				t.Fatalf("step %d %q: %v", i, s.op, err)
			}
			return v
		}
		var got string
		switch f[0] {
		case "apply":
			got = tb.Apply(doc(t, n, s.m...), s.valid).String()
		case "acquire":
			e, ok := tb.Acquire(arg(1), s.valid)
			got = fmt.Sprintf("%v@%d", ok, e)
		case "done":
			got = fmt.Sprint(tb.Done(arg(1)))
		case "fence":
			mine, stopped := tb.Fence(arg(1), int64(arg(2)))
			got = fmt.Sprintf("mine %d stopped %v", mine, stopped)
		case "holds":
			got = fmt.Sprintf("holds %v active %v", tb.Holds(arg(1)), tb.Active(arg(1)))
		case "ackfail":
			tb.AckFailed(Release{Partition: arg(1), Ack: shardproto.Ack{Epoch: int64(arg(2)), Asked: int64(arg(3))}})
			got = "-"
		default:
			t.Fatalf("step %d: unknown op %q", i, s.op)
		}
		if got != s.want {
			t.Fatalf("step %d (%s %v valid=%v): got %q, want %q", i, s.op, s.m, s.valid, got, s.want)
		}
	}
}

// TestScenarios replays exact orders of map changes, rounds, fencing and
// lease loss on a replica "a" of a 4-partition installation.
func TestScenarios(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"first map starts what it gives", []step{
			{op: "apply", m: []string{"0=a@1", "1=b@1", "2=a@1"}, valid: true, want: "start 0@1,2@1"},
			{op: "apply", m: []string{"0=a@1", "1=b@1", "2=a@1"}, valid: true, want: "-"},
			{op: "acquire 0", valid: true, want: "true@1"},
			{op: "acquire 1", valid: true, want: "false@0"},
		}},
		{"release with nothing in flight is acknowledged at once", []step{
			{op: "apply", m: []string{"0=a@3"}, valid: true, want: "start 0@3"},
			{op: "apply", m: []string{"0=a@3>b#7"}, valid: true, want: "stop 0; ack 0@3#7"},
			{op: "acquire 0", valid: true, want: "false@0"},
			{op: "apply", m: []string{"0=a@3>b#7"}, valid: true, want: "-"}, // written once
			{op: "apply", m: []string{"0=b@4"}, valid: true, want: "-"},
		}},
		{"release waits for the round in flight", []step{
			{op: "apply", m: []string{"0=a@3"}, valid: true, want: "start 0@3"},
			{op: "acquire 0", valid: true, want: "true@3"},
			{op: "acquire 0", valid: true, want: "true@3"},
			{op: "apply", m: []string{"0=a@3>b#7"}, valid: true, want: "stop 0"},
			{op: "acquire 0", valid: true, want: "false@0"},
			// Draining: no new round, but the pods stay watched for those in flight.
			{op: "holds 0", want: "holds true active false"},
			{op: "done 0", want: "false"},
			{op: "apply", m: []string{"0=a@3>b#7"}, valid: true, want: "-"},
			{op: "done 0", want: "true"},
			{op: "done 0", want: "false"}, // an extra Done is ignored
			{op: "holds 0", want: "holds true active false"},
			{op: "apply", m: []string{"0=a@3>b#7"}, valid: true, want: "ack 0@3#7"},
			{op: "holds 0", want: "holds false active false"},
		}},
		{"a failed acknowledgement is written again", []step{
			{op: "apply", m: []string{"0=a@3>b#7"}, valid: true, want: "ack 0@3#7"},
			{op: "ackfail 0 3 7", want: "-"},
			{op: "apply", m: []string{"0=a@3>b#7"}, valid: true, want: "ack 0@3#7"},
			{op: "ackfail 0 3 6", want: "-"}, // not the one outstanding
			{op: "apply", m: []string{"0=a@3>b#7"}, valid: true, want: "-"},
		}},
		{"release cancelled before the ack resumes the partition", []step{
			{op: "apply", m: []string{"0=a@3"}, valid: true, want: "start 0@3"},
			{op: "acquire 0", valid: true, want: "true@3"},
			{op: "apply", m: []string{"0=a@3>b#7"}, valid: true, want: "stop 0"},
			{op: "apply", m: []string{"0=a@3"}, valid: true, want: "start 0@3"},
			{op: "done 0", want: "false"},
			{op: "acquire 0", valid: true, want: "true@3"},
		}},
		{"a new request after a cancelled one is acknowledged anew", []step{
			{op: "apply", m: []string{"0=a@3>b#7"}, valid: true, want: "ack 0@3#7"},
			{op: "apply", m: []string{"0=a@3"}, valid: true, want: "start 0@3"},
			{op: "apply", m: []string{"0=a@3>c#9"}, valid: true, want: "stop 0; ack 0@3#9"},
		}},
		{"an invalid lease stops everything until it is valid again", []step{
			{op: "apply", m: []string{"0=a@1", "3=a@2"}, valid: true, want: "start 0@1,3@2"},
			{op: "acquire 3", valid: true, want: "true@2"},
			{op: "apply", m: []string{"0=a@1", "3=a@2"}, valid: false, want: "stop 0,3"},
			{op: "acquire 0", valid: false, want: "false@0"},
			{op: "done 3", want: "true"},
			{op: "apply", m: []string{"0=a@1", "3=a@2"}, valid: true, want: "start 0@1,3@2"},
		}},
		{"acquire refuses while the lease is invalid", []step{
			{op: "apply", m: []string{"0=a@1"}, valid: true, want: "start 0@1"},
			{op: "acquire 0", valid: false, want: "false@0"},
		}},
		{"fenced partition stays stopped until a higher epoch", []step{
			{op: "apply", m: []string{"1=a@4"}, valid: true, want: "start 1@4"},
			{op: "acquire 1", valid: true, want: "true@4"},
			{op: "fence 1 5", want: "mine 4 stopped true"},
			{op: "fence 1 5", want: "mine 4 stopped false"},
			{op: "acquire 1", valid: true, want: "false@0"},
			{op: "apply", m: []string{"1=a@4"}, valid: true, want: "-"}, // stale map
			{op: "done 1", want: "true"},
			{op: "apply", m: []string{"1=a@5"}, valid: true, want: "-"}, // the epoch seen is not newer
			{op: "apply", m: []string{"1=a@6"}, valid: true, want: "start 1@6"},
			{op: "acquire 1", valid: true, want: "true@6"},
		}},
		{"fence of a partition not held only remembers the epoch", []step{
			{op: "fence 2 9", want: "mine 0 stopped false"},
			{op: "apply", m: []string{"2=a@9"}, valid: true, want: "-"},
			{op: "apply", m: []string{"2=a@10"}, valid: true, want: "start 2@10"},
		}},
		{"regained at a higher epoch restarts at that epoch", []step{
			{op: "apply", m: []string{"0=a@1"}, valid: true, want: "start 0@1"},
			{op: "apply", m: []string{"0=a@3"}, valid: true, want: "start 0@3"},
			{op: "acquire 0", valid: true, want: "true@3"},
		}},
		{"lost to a takeover stops without an ack", []step{
			{op: "apply", m: []string{"0=a@1"}, valid: true, want: "start 0@1"},
			{op: "apply", m: []string{"0=b@2"}, valid: true, want: "stop 0"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { run(t, New("a", 4), 4, tc.steps) })
	}
}

// TestPartitionCountMismatch: a map planned for another partition count
// is not followed at all: every partition stops, nothing is acknowledged,
// and Err names both counts.
func TestPartitionCountMismatch(t *testing.T) {
	tb := New("a", 4)
	run(t, tb, 4, []step{
		{op: "apply", m: []string{"0=a@1", "1=a@1"}, valid: true, want: "start 0@1,1@1"},
	})
	acts := tb.Apply(doc(t, 8, "0=a@2", "1=a@1>b#3", "5=a@1"), true)
	if acts.String() != "stop 0,1; err" {
		t.Fatalf("actions on an 8-partition map: %s", acts)
	}
	if err := tb.Err(); err == nil || !strings.Contains(err.Error(), "8 partitions") || !strings.Contains(err.Error(), "configured for 4") {
		t.Fatalf("Err() = %v, want it to name 8 and 4", err)
	}
	if _, ok := tb.Acquire(0, true); ok {
		t.Fatal("acquired a partition of a map that cannot be followed")
	}
	if got := tb.Apply(doc(t, 4, "0=a@2"), true).String(); got != "start 0@2" || tb.Err() != nil {
		t.Fatalf("back on a 4-partition map: %s, err %v", got, tb.Err())
	}
}

func TestNoMapYet(t *testing.T) {
	tb := New("a", 4)
	if got := tb.Apply(nil, true).String(); got != "-" || tb.Applied() {
		t.Fatalf("nil map: %s, applied %v", got, tb.Applied())
	}
	tb.Apply(doc(t, 4, "1=a@1"), true)
	if !tb.Applied() || tb.ActiveCount() != 1 || tb.Held() != 1 || tb.Epoch(1) != 1 || !tb.Active(1) || tb.Active(0) {
		t.Fatalf("after one map: applied %v active %d held %d epoch %d", tb.Applied(), tb.ActiveCount(), tb.Held(), tb.Epoch(1))
	}
}
