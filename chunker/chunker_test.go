package chunker

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
)

func gearFrom(seed uint64) *[256]uint64 {
	rng := rand.New(rand.NewPCG(seed, 0))
	var g [256]uint64
	for i := range g {
		g[i] = rng.Uint64()
	}
	return &g
}

func randomBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// chunks returns the chunk boundaries (as sizes) of data, read in small pieces.
func chunks(t testing.TB, data []byte, gear *[256]uint64, p Params) []int {
	c, err := New(iotestHalfReader{bytes.NewReader(data)}, gear, p)
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int
	var joined []byte
	for {
		b, err := c.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(b))
		joined = append(joined, b...)
	}
	if !bytes.Equal(joined, data) {
		t.Fatal("chunks do not join back to the input")
	}
	return sizes
}

// iotestHalfReader returns at most 7919 bytes per Read, to exercise refills.
type iotestHalfReader struct{ r io.Reader }

func (h iotestHalfReader) Read(p []byte) (int, error) {
	if len(p) > 7919 {
		p = p[:7919]
	}
	return h.r.Read(p)
}

func TestBoundsAndAverage(t *testing.T) {
	data := randomBytes(1, 64<<20)
	sizes := chunks(t, data, gearFrom(1), DefaultParams)
	for i, s := range sizes[:len(sizes)-1] {
		if s < DefaultParams.Min || s > DefaultParams.Max {
			t.Fatalf("chunk %d has size %d outside [%d, %d]", i, s, DefaultParams.Min, DefaultParams.Max)
		}
	}
	avg := len(data) / len(sizes)
	if avg < DefaultParams.Avg/2 || avg > 2*DefaultParams.Avg {
		t.Fatalf("average chunk size %d is far from %d", avg, DefaultParams.Avg)
	}
}

func TestSmallInputs(t *testing.T) {
	for _, n := range []int{0, 1, 100, DefaultParams.Min, DefaultParams.Min + 1} {
		sizes := chunks(t, randomBytes(2, n), gearFrom(1), DefaultParams)
		if n == 0 && len(sizes) != 0 || n > 0 && len(sizes) != 1 {
			t.Fatalf("%d bytes gave chunks %v", n, sizes)
		}
	}
}

// TestLocality: inserting bytes in the middle changes only the chunks near
// the insertion; the chunks before and after are the same.
func TestLocality(t *testing.T) {
	data := randomBytes(3, 32<<20)
	edited := append(append(append([]byte{}, data[:16<<20]...), []byte("inserted bytes")...), data[16<<20:]...)
	a := chunks(t, data, gearFrom(1), DefaultParams)
	b := chunks(t, edited, gearFrom(1), DefaultParams)
	set := map[int]int{}
	off := 0
	for _, s := range a {
		set[off] = s
		off += s
	}
	same := 0
	off = 0
	for _, s := range b {
		shifted := off
		if off > 16<<20 {
			shifted -= len("inserted bytes")
		}
		if set[shifted] == s {
			same++
		}
		off += s
	}
	if diff := len(b) - same; diff > 3 {
		t.Fatalf("%d of %d chunks changed after a 14-byte insertion", diff, len(b))
	}
}

func TestGearChangesBoundaries(t *testing.T) {
	data := randomBytes(4, 16<<20)
	a := chunks(t, data, gearFrom(1), DefaultParams)
	b := chunks(t, data, gearFrom(2), DefaultParams)
	if len(a) == len(b) && a[0] == b[0] && a[1] == b[1] {
		t.Fatal("boundaries do not depend on the gear table")
	}
}

func TestValidate(t *testing.T) {
	for _, p := range []Params{{Min: 1, Avg: 1 << 20, Max: 4 << 20}, {Min: 1 << 18, Avg: 3 << 19, Max: 4 << 20}, {Min: 4 << 20, Avg: 1 << 20, Max: 8 << 20}} {
		if p.Validate() == nil {
			t.Errorf("%+v validated", p)
		}
	}
}

func BenchmarkChunker(b *testing.B) {
	data := randomBytes(5, 64<<20)
	gear := gearFrom(1)
	c, _ := New(nil, gear, DefaultParams)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		c.Reset(bytes.NewReader(data))
		for {
			if _, err := c.Next(); err != nil {
				break
			}
		}
	}
}

// wrappedEOFReader yields data, then an error that wraps io.EOF, as a
// network client does when a connection is cut mid-response.
type wrappedEOFReader struct{ data []byte }

var errCut = fmt.Errorf("request send failed: %w", io.EOF)

func (r *wrappedEOFReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, errCut
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// TestWrappedEOFIsAnError: only a bare io.EOF ends the stream; an error
// that wraps it must reach the caller, or a cut connection would silently
// make a file shorter.
func TestWrappedEOFIsAnError(t *testing.T) {
	c, err := New(&wrappedEOFReader{data: randomBytes(7, 3*DefaultParams.Max)}, gearFrom(1), DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	for {
		_, err := c.Next()
		if err == nil {
			continue
		}
		if !errors.Is(err, errCut) {
			t.Fatalf("Next ended with %v, want the reader's error", err)
		}
		return
	}
}

// TestReuse: a chunker given an earlier chunker's buffer (larger or
// smaller than it needs) cuts the same chunks as a fresh one.
func TestReuse(t *testing.T) {
	gear := gearFrom(3)
	data := randomBytes(9, 5<<20)
	want := chunks(t, data, gear, DefaultParams)
	for _, n := range []int{0, 100, 64 << 10, 4 << 20, 8 << 20} {
		c, err := New(iotestHalfReader{bytes.NewReader(data)}, gear, DefaultParams)
		if err != nil {
			t.Fatal(err)
		}
		c.Reuse(make([]byte, 7, n+7))
		var got []int
		var joined []byte
		for {
			b, err := c.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, len(b))
			joined = append(joined, b...)
		}
		if !bytes.Equal(joined, data) || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("reusing a buffer of %d bytes: chunks %v, want %v", n+7, got, want)
		}
		if len(c.Buffer()) < n+7 {
			t.Fatalf("Buffer returned %d bytes, less than the %d given", len(c.Buffer()), n+7)
		}
	}
}
