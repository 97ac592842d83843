package sealedfile

import (
	"bytes"
	"flag"
	"os"
	"testing"

	"github.com/sealfs/sealfs/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite the golden sealed staging file from this code")

const (
	goldenFile = "../../../testdata/vectors/local/staging-v1"
	goldenName = "staging/00112233445566778899aabbccddeeff"
	vectorFile = "../../../testdata/vectors/crypt.json"
)

// goldenPlain is the content of the golden staging file: two full blocks,
// a hole block, and a short last block.
func goldenPlain() []byte {
	b := make([]byte, 3*BlockSize+1000)
	for i := range b {
		if i < 2*BlockSize || i >= 3*BlockSize {
			b[i] = byte(i*7 + 1)
		}
	}
	return b
}

// TestGoldenStagingFile: a staging file sealed by format v1 (docs/SPEC.md
// §12.1) under the keys of the crypt test vectors still reads back: any
// change of the layout, block size, key derivation or AD breaks it.
// Regenerate (a format change) with: go test ./worktree/sealedfile -run Golden -update
func TestGoldenStagingFile(t *testing.T) {
	key := testutil.VectorKeys(t, vectorFile).LocalKey()
	want := goldenPlain()
	if *update {
		os.Remove(goldenFile)
		f, err := Create(goldenFile, goldenName, key)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteAt(want[:2*BlockSize], 0)
		f.WriteAt(want[3*BlockSize:], 3*BlockSize)
		f.Close()
	}
	fi, err := os.Stat(goldenFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != 3*PageSize+1000+28 {
		t.Fatalf("the golden file is %d bytes, want %d", fi.Size(), 3*PageSize+1000+28)
	}
	f, err := Open(goldenFile, goldenName, key, false)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := readAll(t, f); !bytes.Equal(got, want) {
		t.Fatal("the golden staging file reads back other bytes")
	}
	raw, _ := os.ReadFile(goldenFile)
	if !bytes.Equal(raw[2*PageSize:3*PageSize], make([]byte, PageSize)) {
		t.Fatal("the hole block is not stored as zeros")
	}
}
