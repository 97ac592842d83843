package repo

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"testing"

	"github.com/sealfs/sealfs/chunker"
	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/remote/faulty"
	"github.com/sealfs/sealfs/remote/rcloneremote"
	"github.com/sealfs/sealfs/repo/format"
)

const benchSize = 64 << 20

func benchData(compressible bool) []byte {
	b := make([]byte, benchSize)
	if !compressible {
		rng := mrand.New(mrand.NewPCG(1, 2))
		for i := 0; i+8 <= len(b); i += 8 {
			v := rng.Uint64()
			for j := range 8 {
				b[i+j] = byte(v >> (8 * j))
			}
		}
		return b
	}
	// Log-like text: compresses about 4:1 with zstd's fastest level.
	var buf bytes.Buffer
	rng := mrand.New(mrand.NewPCG(3, 4))
	for buf.Len() < benchSize {
		fmt.Fprintf(&buf, "2026-11-28T02:%02d:%02d host%d sealfs[%d]: request %x took %dms\n",
			rng.IntN(60), rng.IntN(60), rng.IntN(8), rng.IntN(99999), rng.Uint64(), rng.IntN(500))
	}
	copy(b, buf.Bytes())
	return b
}

func benchRepo(b *testing.B, compression string) *Repository {
	b.Helper()
	mk, _ := crypt.NewMasterKey()
	id, _ := crypt.NewRepoID()
	cfg := &format.Config{Version: 1, Repository: id.String(), ChunkMin: chunker.DefaultParams.Min, ChunkAvg: chunker.DefaultParams.Avg,
		ChunkMax: chunker.DefaultParams.Max, PackSize: DefaultPackSize, Compression: compression}
	rem, err := rcloneremote.Open(context.Background(), fmt.Sprintf(":memory:bench%d", b.N))
	if err != nil {
		b.Fatal(err)
	}
	r, err := newRepository(rem, cfg, id, mk, Options{CacheDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	r.lease = &leaseHolder{}
	return r
}

// BenchmarkRawAESGCM is the baseline: AES-256-GCM sealing 1 MiB buffers.
func BenchmarkRawAESGCM(b *testing.B) {
	key := make([]byte, 32)
	rand.Read(key)
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(block)
	buf := make([]byte, 1<<20)
	out := make([]byte, 0, len(buf)+64)
	nonce := make([]byte, 12)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		out = aead.Seal(out[:0], nonce, buf, nil)
	}
}

// BenchmarkHMACSHA256 is the cost of keyed chunk ids on 1 MiB chunks.
func BenchmarkHMACSHA256(b *testing.B) {
	buf := make([]byte, 1<<20)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		m := hmac.New(sha256.New, buf[:32])
		m.Write(buf)
		m.Sum(nil)
	}
}

// BenchmarkChunkEncrypt is the write pipeline without the remote: chunk,
// keyed id, compression attempt, seal into a pack buffer.
func BenchmarkChunkEncrypt(b *testing.B) {
	for _, c := range []struct {
		name, compression string
		text              bool
	}{{"random/zstd", CompressionZstd, false}, {"random/none", CompressionNone, false}, {"text/zstd", CompressionZstd, true}} {
		b.Run(c.name, func(b *testing.B) {
			r := benchRepo(b, c.compression)
			data := benchData(c.text)
			ck, _ := chunker.New(nil, r.gear, r.cfg.Chunking())
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				ck.Reset(bytes.NewReader(data))
				p, _ := newPackBuilder(r.cfg.PackSize*2, nil)
				for {
					chunk, err := ck.Next()
					if errors.Is(err, io.EOF) {
						break
					}
					id := r.keys.BlobID(crypt.TypeDataBlob, chunk)
					sb, err := r.sealBlob(crypt.TypeDataBlob, id, chunk)
					if err != nil {
						b.Fatal(err)
					}
					p.add(sb)
					if len(p.buf) >= r.cfg.PackSize {
						p, _ = newPackBuilder(r.cfg.PackSize*2, nil)
					}
				}
			}
		})
	}
}

// BenchmarkSaveFile stores a file into a repository on rclone's memory
// backend, packs uploaded, into an empty repository each time.
func BenchmarkSaveFile(b *testing.B) {
	data := benchData(false)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		b.StopTimer()
		r := benchRepo(b, CompressionZstd) // an empty index: nothing deduplicates
		b.StartTimer()
		if _, _, err := r.SaveFile(context.Background(), bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		if err := r.Flush(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadFile reads a stored 64 MiB file back: range requests,
// authentication, decryption and id verification of every chunk.
func BenchmarkReadFile(b *testing.B) {
	r := benchRepo(b, CompressionZstd)
	data := benchData(false)
	content, size, err := r.SaveFile(context.Background(), bytes.NewReader(data))
	if err != nil {
		b.Fatal(err)
	}
	if err := r.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	n := &Node{Name: []byte("f"), Type: NodeFile, Size: size, Content: content}
	b.SetBytes(int64(size))
	for b.Loop() {
		if _, err := r.OpenFile(n).CopyTo(context.Background(), io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRandomRead4K reads 4 KiB at random offsets of a stored 64 MiB
// file of random data, on a local-directory remote, with nothing cached
// (each read finds no table, segment or chunk in memory or on disk): a
// file written with data blobs sealed whole (format version 1 as first
// written) against one written segmented (SPEC §6.2), in one run.
// B-fetched/op is what each read fetched from the remote.
func BenchmarkRandomRead4K(b *testing.B) {
	data := benchData(false)
	for _, c := range []struct {
		name  string
		whole bool
	}{{"whole", true}, {"segmented", false}} {
		b.Run(c.name, func(b *testing.B) {
			r := benchRepo(b, CompressionZstd)
			rem, err := rcloneremote.Open(context.Background(), b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			counting := faulty.New(rem, 1)
			r.remote, r.wholeDataBlobs = counting, c.whole
			content, size, err := r.SaveFile(context.Background(), bytes.NewReader(data))
			if err != nil {
				b.Fatal(err)
			}
			if err := r.Flush(context.Background()); err != nil {
				b.Fatal(err)
			}
			fr := r.OpenFile(&Node{Name: []byte("f"), Type: NodeFile, Size: size, Content: content})
			rng := mrand.New(mrand.NewPCG(5, 6))
			buf := make([]byte, 4096)
			before := counting.Stats().BytesGot
			for b.Loop() {
				off := int64(rng.IntN(len(data)/4096)) * 4096
				if _, err := fr.ReadAt(context.Background(), buf, off); err != nil || !bytes.Equal(buf, data[off:off+4096]) {
					b.Fatalf("read at %d: %v", off, err)
				}
			}
			b.ReportMetric(float64(counting.Stats().BytesGot-before)/float64(b.N), "B-fetched/op")
		})
	}
}
