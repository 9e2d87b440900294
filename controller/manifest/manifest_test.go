package manifest

import "testing"

func TestToJSONKeepsYAML12Keys(t *testing.T) {
	docs, err := ToJSON([]byte("outputs: {y: integer}\ninputs:\n  n: {type: integer, value: 3}\n---\n---\nb: yes\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`{"inputs":{"n":{"type":"integer","value":3}},"outputs":{"y":"integer"}}`, `{"b":"yes"}`}
	if len(docs) != len(want) {
		t.Fatalf("got %d documents, want %d", len(docs), len(want))
	}
	for i := range want {
		if string(docs[i]) != want[i] {
			t.Errorf("doc %d = %s, want %s", i, docs[i], want[i])
		}
	}
}

func TestUnmarshalRejectsUnknownFields(t *testing.T) {
	var v struct {
		A int `json:"a"`
	}
	if err := Unmarshal([]byte("a: 1\nb: 2\n"), &v); err == nil {
		t.Fatal("unknown field b accepted")
	}
	if err := Unmarshal([]byte("a: 1\n"), &v); err != nil || v.A != 1 {
		t.Fatalf("Unmarshal = %v, %+v", err, v)
	}
}
