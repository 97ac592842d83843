package sealedfile

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/sealfs/sealfs/crypt"
)

// The benchmarks compare a sealed staging file with a plain one, for the
// write sizes FUSE sends (128 KiB, 1 MiB), small random writes into an
// existing file (4 KiB, as a database page), and reads, each over a 64 MiB
// file. The page sizes beside v1's 4 KiB show what a larger block would buy.
//
//	go test ./worktree/sealedfile -run '^$' -bench . -benchtime 20x -cpu 1

const benchFile = 64 << 20

type rw interface {
	io.ReaderAt
	io.WriterAt
	Close() error
}

func benchFiles(b *testing.B) []struct {
	name string
	open func() rw
} {
	key := testKey(b)
	dir := b.TempDir()
	n := 0
	path := func() string { n++; return filepath.Join(dir, fmt.Sprint(n)) }
	sealed := func(page int64) func() rw {
		return func() rw {
			f, err := open(path(), "staging/bench", key, os.O_RDWR|os.O_CREATE|os.O_EXCL, geometry{page: page, block: page - crypt.Overhead})
			if err != nil {
				b.Fatal(err)
			}
			return f
		}
	}
	return []struct {
		name string
		open func() rw
	}{
		{"plain", func() rw {
			f, err := os.Create(path())
			if err != nil {
				b.Fatal(err)
			}
			return f
		}},
		{"sealed-4KiB", sealed(4 << 10)},
		{"sealed-16KiB", sealed(16 << 10)},
		{"sealed-64KiB", sealed(64 << 10)},
	}
}

func fill(b *testing.B, f rw, chunk int) {
	buf := make([]byte, chunk)
	for i := range buf {
		buf[i] = byte(i)
	}
	for off := 0; off < benchFile; off += chunk {
		if _, err := f.WriteAt(buf, int64(off)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSequentialWrite(b *testing.B) {
	for _, chunk := range []int{128 << 10, 1 << 20} {
		for _, c := range benchFiles(b) {
			b.Run(fmt.Sprintf("%s/%dKiB", c.name, chunk>>10), func(b *testing.B) {
				b.SetBytes(benchFile)
				for b.Loop() {
					f := c.open()
					fill(b, f, chunk)
					f.Close()
				}
			})
		}
	}
}

func BenchmarkRandomWrite4KiB(b *testing.B) {
	for _, c := range benchFiles(b) {
		b.Run(c.name, func(b *testing.B) {
			f := c.open()
			defer f.Close()
			fill(b, f, 1<<20)
			rng := rand.New(rand.NewPCG(1, 2))
			buf := make([]byte, 4096)
			b.SetBytes(4096)
			for b.Loop() {
				if _, err := f.WriteAt(buf, rng.Int64N(benchFile/4096)*4096); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSequentialRead(b *testing.B) {
	for _, c := range benchFiles(b) {
		b.Run(c.name+"/128KiB", func(b *testing.B) {
			f := c.open()
			defer f.Close()
			fill(b, f, 1<<20)
			buf := make([]byte, 128<<10)
			b.SetBytes(benchFile)
			for b.Loop() {
				for off := 0; off < benchFile; off += len(buf) {
					if _, err := f.ReadAt(buf, int64(off)); err != nil && err != io.EOF {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
