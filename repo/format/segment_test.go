package format

import (
	"bytes"
	"slices"
	"testing"

	"github.com/sealfs/sealfs/crypt"
)

// FuzzDecodeSegmentTable: whatever the table plaintext and the index's
// sizes, a table that decodes has segments within their bounds, back to
// back, exactly filling the blob after the table, and encodes back to the
// same bytes.
func FuzzDecodeSegmentTable(f *testing.F) {
	f.Add(EncodeSegmentTable([]uint32{SegmentSize + 29, SegmentSize + 29, 1000 + 29}), uint32(2*SegmentSize+1000), uint32(28+12+2*(SegmentSize+29)+1029))
	f.Add(EncodeSegmentTable([]uint32{94, 94, 95}), uint32(2*SegmentSize+1000), uint32(28+12+283))
	f.Add(EncodeSegmentTable([]uint32{55}), uint32(100), uint32(28+4+55))
	f.Add([]byte{}, uint32(0), uint32(0))
	f.Fuzz(func(t *testing.T, b []byte, raw, length uint32) {
		tab, err := DecodeSegmentTable(b, raw, length)
		if err != nil {
			return
		}
		n := SegmentCount(raw)
		if tab.Count() != n || n == 0 || n > MaxSegments {
			t.Fatalf("%d segments for %d raw bytes", tab.Count(), raw)
		}
		if tab.Bounds[0] != uint32(SegmentTableLen(raw)) || tab.Bounds[n] != length {
			t.Fatalf("segments span [%d, %d) of a %d-byte blob", tab.Bounds[0], tab.Bounds[n], length)
		}
		lens := make([]uint32, n)
		for i := range n {
			lens[i] = tab.Bounds[i+1] - tab.Bounds[i]
			if lens[i] < crypt.Overhead+2 || int(lens[i]) > crypt.Overhead+1+SegmentRawLen(raw, i) {
				t.Fatalf("segment %d has sealed length %d", i, lens[i])
			}
		}
		if !bytes.Equal(EncodeSegmentTable(lens), b) {
			t.Fatal("the table does not encode back to its bytes")
		}
		e := IndexEntry{Location: Location{Type: crypt.TypeSegmentedBlob, Length: length, RawLength: raw}}
		if err := e.validate(); err != nil {
			t.Fatalf("a blob whose table decodes has an entry that does not validate: %v", err)
		}
		// A reader may place the segments before the table opens when
		// the length forces them: then no other table decodes.
		if forced, ok := ForcedSegmentTable(raw, length); ok && !slices.Equal(forced.Bounds, tab.Bounds) {
			t.Fatalf("table %v decodes for a length that forces %v", tab.Bounds, forced.Bounds)
		}
	})
}

// TestSegmentedEntryBounds: an index entry of a segmented blob is refused
// when no table could fill it.
func TestSegmentedEntryBounds(t *testing.T) {
	raw := uint32(2*SegmentSize + 1000)
	table := uint32(28 + 12)
	for _, c := range []struct {
		length, raw uint32
		ok          bool
	}{
		{table + 3*30, raw, true},
		{table + 3*30 - 1, raw, false},
		{table + 3*29 + raw, raw, true},
		{table + 3*29 + raw + 1, raw, false},
		{100, 0, false},
		{MaxSealedBlob, MaxBlobSize, true},
		{MaxSealedBlob, MaxBlobSize + 1, false},
	} {
		e := IndexEntry{Location: Location{Type: crypt.TypeSegmentedBlob, Length: c.length, RawLength: c.raw}}
		if err := e.validate(); (err == nil) != c.ok {
			t.Errorf("length %d raw %d: %v, want ok=%v", c.length, c.raw, err, c.ok)
		}
	}
}

// TestForcedSegmentTable: the largest sealed length of a raw length fixes
// the table (every segment raw); any other length does not.
func TestForcedSegmentTable(t *testing.T) {
	raw := uint32(2*SegmentSize + 1000)
	max := uint32(28 + 12 + 3*29 + 2*SegmentSize + 1000)
	forced, ok := ForcedSegmentTable(raw, max)
	want := []uint32{40, 40 + SegmentSize + 29, 40 + 2*(SegmentSize+29), max}
	if !ok || !slices.Equal(forced.Bounds, want) {
		t.Fatalf("forced table %v, %v; want %v", forced.Bounds, ok, want)
	}
	dec, err := DecodeSegmentTable(EncodeSegmentTable([]uint32{SegmentSize + 29, SegmentSize + 29, 1029}), raw, max)
	if err != nil || !slices.Equal(dec.Bounds, forced.Bounds) {
		t.Fatalf("the table of a raw blob decodes to %v, %v", dec.Bounds, err)
	}
	for _, l := range []uint32{max - 1, max + 1, 40 + 3*30} {
		if _, ok := ForcedSegmentTable(raw, l); ok {
			t.Errorf("length %d forces a table", l)
		}
	}
}
