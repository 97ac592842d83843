package format

import (
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"reflect"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors/tree.json and forget.json from this code (a format change)")

// treeVectorFile holds tree blob plaintexts of each version with the
// entries they hold, for a second implementation (test/spec reads it too).
const treeVectorFile = "../../testdata/vectors/tree.json"

// treeVector is one tree blob plaintext and what it reads as.
type treeVector struct {
	Comment   string  `json:"comment"`
	Version   int     `json:"version"`
	Plaintext string  `json:"plaintext"` // hex
	Nodes     []*Node `json:"nodes"`
}

// makeTreeVectors returns the vectors: specSample as SPEC §8's grammar
// writes it, version 1 (read with ctime = mtime) and version 2.
func makeTreeVectors() []treeVector {
	v1 := specSample()
	for _, n := range v1.Nodes {
		n.CtimeNs = n.MtimeNs
	}
	return []treeVector{
		{Comment: "version 1: no ctime_ns; each entry reads with ctime_ns = mtime_ns", Version: 1,
			Plaintext: hex.EncodeToString(specTreeBytes(1)), Nodes: v1.Nodes},
		{Comment: "version 2: what a writer writes", Version: 2,
			Plaintext: hex.EncodeToString(specTreeBytes(2)), Nodes: specSample().Nodes},
	}
}

// TestTreeVectors: testdata/vectors/tree.json is what this code makes,
// DecodeTree reads each plaintext as the entries it lists, and EncodeTree
// writes those of version 2 back byte for byte.
func TestTreeVectors(t *testing.T) {
	want := makeTreeVectors()
	if *update {
		b, _ := json.MarshalIndent(want, "", "  ")
		if err := os.WriteFile(treeVectorFile, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(treeVectorFile)
	if err != nil {
		t.Fatal(err)
	}
	var got []treeVector
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s is not what this code makes (a format change needs -update and a SPEC change)", treeVectorFile)
	}
	for _, v := range got {
		pt, _ := hex.DecodeString(v.Plaintext)
		tree, err := DecodeTree(pt)
		if err != nil || !reflect.DeepEqual(tree.Nodes, v.Nodes) {
			t.Errorf("version %d: the plaintext reads as other entries (%v)", v.Version, err)
		}
		if v.Version == TreeVersion {
			if again, err := EncodeTree(&Tree{Nodes: v.Nodes}); err != nil || hex.EncodeToString(again) != v.Plaintext {
				t.Errorf("version %d: the entries encode to other bytes (%v)", v.Version, err)
			}
		}
	}
}
