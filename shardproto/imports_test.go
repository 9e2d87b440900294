package shardproto

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestSidesDoNotImportEachOther: the manager and the replica side share
// the protocol through this package only. Neither imports the other, and
// this package imports neither.
func TestSidesDoNotImportEachOther(t *testing.T) {
	const mod = "github.com/rotor-dev/rotor/"
	forbidden := map[string]string{"manager": mod + "shard", "shard": mod + "manager", "shardproto": mod + "manager"}
	checked := 0
	for dir, bad := range forbidden {
		root := filepath.Join("..", dir)
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
				return err
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
			if err != nil {
				return err
			}
			checked++
			for _, imp := range f.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				if p == bad || strings.HasPrefix(p, bad+"/") || (dir == "shardproto" && (p == mod+"shard" || strings.HasPrefix(p, mod+"shard/"))) {
					t.Errorf("%s imports %s: share it through shardproto instead", path, p)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if checked < 10 {
		t.Fatalf("checked %d files under manager, shard and shardproto: the walk found too few", checked)
	}
}
