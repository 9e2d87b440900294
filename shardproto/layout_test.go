package shardproto

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

func kv(k, v string) *mvccpb.KeyValue { return &mvccpb.KeyValue{Key: []byte(k), Value: []byte(v)} }

func TestParseAck(t *testing.T) {
	k := Keys{Prefix: "/rotor"}
	for _, tc := range []struct {
		key, value string
		ok         bool
		want       string
	}{
		{k.ReleasedKey("r-1", 7), EncodeAck(Ack{Epoch: 4, Asked: 19}), true, "r-1 7 {4 19}"},
		{k.ReleasedKey("r-1", 7), "4", true, "r-1 7 {4 0}"}, // an older replica's
		{k.ReleasedKey("r-1", 7), "4/x", false, ""},
		{k.ReleasedKey("r-1", 7), "", false, ""},
		{k.Released() + "r-1", "4", false, ""},
		{k.Released() + "r-1/p", "4", false, ""},
		{k.Members() + "r-1", "4", false, ""},
	} {
		m, p, a, ok := ParseAck(k, tc.key, []byte(tc.value))
		got := ""
		if ok {
			got = fmt.Sprintf("%s %d %v", m, p, a)
		}
		if ok != tc.ok || got != tc.want {
			t.Errorf("ParseAck(%q, %q) = %q %v, want %q %v", tc.key, tc.value, got, ok, tc.want, tc.ok)
		}
	}
}

// TestParseSnapshot: members, acks and drain requests fold into one
// snapshot; a drain request marks its member draining, or is stale when
// the member is gone; keys of other kinds are skipped.
func TestParseSnapshot(t *testing.T) {
	k := Keys{Prefix: "/rotor"}
	info := func(name string, w int) string {
		b, _ := json.Marshal(MemberInfo{Name: name, Weight: w, Workflows: 3})
		return string(b)
	}
	s := ParseSnapshot(k, []*mvccpb.KeyValue{
		kv(k.Members()+"a", info("a", 1)),
		kv(k.Members()+"b", info("b", 2)),
		kv(k.Members()+"bad", "{not json"),
		kv(k.ReleasedKey("a", 3), EncodeAck(Ack{Epoch: 2, Asked: 5})),
		kv(k.ReleasedKey("a", 4), "1"),
		kv(k.DrainKey("b"), "2026-12-01T00:00:00Z"),
		kv(k.DrainKey("gone"), "2026-12-01T00:00:00Z"),
		kv(k.Map(), `{"partitions":1,"map":[{}]}`),
		kv(k.Leader()+"/123", "m-0"),
	})
	var names []string
	for n, m := range s.Members {
		names = append(names, fmt.Sprintf("%s:w%d:d%v:%d", n, m.Weight, m.Draining, m.Workflows))
	}
	sort.Strings(names)
	if got := strings.Join(names, " "); got != "a:w1:dfalse:3 b:w2:dtrue:3" {
		t.Errorf("members %s", got)
	}
	if got := fmt.Sprint(s.Acks); got != "map[a:map[3:{2 5} 4:{1 0}]]" {
		t.Errorf("acks %s", got)
	}
	if fmt.Sprint(s.StaleDrains) != "[gone]" {
		t.Errorf("stale drains %v", s.StaleDrains)
	}
}

func TestDecodeAndCheck(t *testing.T) {
	if _, err := Decode([]byte(`{"partitions":2,"map":[{}]}`)); err == nil || !strings.Contains(err.Error(), "lists 1 partitions, declares 2") {
		t.Errorf("short map: %v", err)
	}
	if _, err := Decode([]byte(`{`)); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("corrupt map: %v", err)
	}
	d, err := Decode([]byte(`{"partitions":2,"version":7,"map":[{"owner":"a","epoch":3,"next":"b","asked":7},{}]}`))
	if err != nil || d.Version != 7 || d.Map[0].Asked != 7 || !d.Map[0].Releasing() {
		t.Fatalf("decode: %+v %v", d, err)
	}
	if err := d.CheckPartitions(2); err != nil {
		t.Errorf("same count: %v", err)
	}
	if err := d.CheckPartitions(4); err == nil || !strings.Contains(err.Error(), "2 partitions") || !strings.Contains(err.Error(), "--partitions") {
		t.Errorf("other count: %v", err)
	}
}
