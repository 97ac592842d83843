// Package chunker splits a byte stream into content-defined chunks with
// FastCDC (Xia et al., USENIX ATC 2016) and normalized chunking: a chunk
// boundary depends only on the bytes around it, so an insertion or change in
// the middle of a file changes the chunks near it and no others.
//
// The gear table is a parameter: sealfs derives it from the repository key
// so that the storage provider cannot predict chunk boundaries (and so chunk
// sizes) from content it knows. No library offers FastCDC with a keyed
// table, which is why this package exists.
package chunker

import (
	"fmt"
	"io"
	"math/bits"
)

// Params bounds the chunk sizes. Avg must be a power of two.
type Params struct {
	Min, Avg, Max int
}

// DefaultParams gives chunks of 128 KiB to 2 MiB, about 512 KiB on average.
// Measured on a 256 MiB file with a 1 MiB change in the middle (16 keys),
// these sizes re-store 1.8 MiB on average and 2.6 MiB at worst, where
// 256 KiB/1 MiB/4 MiB re-stored 3.0 MiB on average and 5.8 MiB at worst:
// after a change the chunker needs about one chunk to fall back into step,
// so smaller chunks keep small edits small. Packs keep requests large.
var DefaultParams = Params{Min: 128 << 10, Avg: 512 << 10, Max: 2 << 20}

// Validate reports whether p is usable.
func (p Params) Validate() error {
	switch {
	case p.Min < 64:
		return fmt.Errorf("chunker: minimum chunk size %d is below 64 bytes", p.Min)
	case p.Avg&(p.Avg-1) != 0:
		return fmt.Errorf("chunker: average chunk size %d is not a power of two", p.Avg)
	case !(p.Min < p.Avg && p.Avg < p.Max):
		return fmt.Errorf("chunker: sizes must satisfy min < avg < max, got %d/%d/%d", p.Min, p.Avg, p.Max)
	case p.Max > 64<<20:
		return fmt.Errorf("chunker: maximum chunk size %d is above 64 MiB", p.Max)
	}
	return nil
}

// Chunker reads a stream and returns it chunk by chunk.
type Chunker struct {
	rd           io.Reader
	gear         *[256]uint64
	p            Params
	maskS, maskL uint64
	buf          []byte
	start, end   int
	eof          bool
}

// topBits returns a mask of the n highest bits: with a left-shifting gear
// hash those depend on the most recent 64 bytes, not just the last one.
func topBits(n int) uint64 { return ^uint64(0) << (64 - n) }

// New returns a chunker over rd with the given gear table and sizes.
func New(rd io.Reader, gear *[256]uint64, p Params) (*Chunker, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	b := bits.TrailingZeros(uint(p.Avg))
	return &Chunker{
		rd: rd, gear: gear, p: p,
		// Normalized chunking (level 1): harder to cut before the average
		// size, easier after it, which narrows the size distribution.
		// Level 2 narrows it more but falls back into step more slowly
		// after a change.
		maskS: topBits(b + 1),
		maskL: topBits(b - 1),
	}, nil
}

// Reuse makes the chunker fill buf (up to its capacity) before it
// allocates a buffer of its own: a buffer from an earlier chunker's
// Buffer, so that a writer of many small files does not allocate one for
// each. Call it before the first Next.
func (c *Chunker) Reuse(buf []byte) {
	if c.end == 0 {
		c.buf = buf[:cap(buf)]
	}
}

// Buffer returns the chunker's buffer, for a later chunker's Reuse once
// no chunk this one returned is used any more.
func (c *Chunker) Buffer() []byte { return c.buf }

// Reset makes the chunker read a new stream, keeping its buffer.
func (c *Chunker) Reset(rd io.Reader) {
	c.rd, c.start, c.end, c.eof = rd, 0, 0, false
}

// Next returns the next chunk, or io.EOF after the last one. The returned
// slice is only valid until the next call.
func (c *Chunker) Next() ([]byte, error) {
	if err := c.fill(); err != nil {
		return nil, err
	}
	if c.start == c.end {
		return nil, io.EOF
	}
	n := c.cut(c.buf[c.start:c.end])
	chunk := c.buf[c.start : c.start+n]
	c.start += n
	return chunk, nil
}

// fill makes sure at least Max bytes are buffered, unless the stream ends.
func (c *Chunker) fill() error {
	if c.eof || c.end-c.start >= c.p.Max {
		return nil
	}
	if c.start > 0 {
		c.end = copy(c.buf, c.buf[c.start:c.end])
		c.start = 0
	}
	for c.end < 2*c.p.Max && !c.eof {
		if c.end == len(c.buf) {
			// Grow as the stream proves long: small files need little.
			c.buf = append(c.buf, make([]byte, min(max(len(c.buf), 64<<10), 2*c.p.Max-len(c.buf)))...)
		}
		n, err := c.rd.Read(c.buf[c.end:])
		c.end += n
		// Only a bare io.EOF ends the stream: a remote's error that wraps
		// io.EOF (a connection cut mid-response) is a failure, not the end.
		if err == io.EOF {
			c.eof = true
		} else if err != nil {
			return err
		}
	}
	return nil
}

// cut returns the length of the chunk at the start of data.
func (c *Chunker) cut(data []byte) int {
	n := len(data)
	if n <= c.p.Min {
		return n
	}
	if n > c.p.Max {
		n = c.p.Max
	}
	normal := c.p.Avg
	if n < normal {
		normal = n
	}
	gear := c.gear
	var h uint64
	i := c.p.Min
	for ; i < normal; i++ {
		h = h<<1 + gear[data[i]]
		if h&c.maskS == 0 {
			return i + 1
		}
	}
	for ; i < n; i++ {
		h = h<<1 + gear[data[i]]
		if h&c.maskL == 0 {
			return i + 1
		}
	}
	return n
}
