package repo

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/repo/format"
)

var updateSegments = flag.Bool("update", false, "rewrite testdata/vectors/segments.json from this code (a format change)")

// segmentVectorFile holds segmented data blobs (docs/SPEC.md §6.2) sealed
// under the fixed key of the crypt vectors.
const segmentVectorFile = "../testdata/vectors/segments.json"

// segmentVectors is the file: the fixed key, the segment key derived from
// it, and the cases.
type segmentVectors struct {
	Comment    string          `json:"comment"`
	MasterKey  string          `json:"master_key"`
	Repository string          `json:"repository"`
	SegmentKey string          `json:"segment_key"`
	Cases      []segmentVector `json:"cases"`
}

// segmentVector is one chunk sealed as a segmented blob. The chunk is
// Input: Text repeated and cut to Length bytes, or, without Text, the
// first Length bytes of the AES-256-CTR keystream under the key 00..1f
// with the counter block 00..00. Sealed is the whole blob (hex) when it
// is short; otherwise SealedSHA256 and Nonces (the table's first, then
// each segment's) let a reader rebuild it from the spec.
type segmentVector struct {
	Name         string   `json:"name"`
	Text         string   `json:"text,omitempty"`
	Length       int      `json:"length"`
	ID           string   `json:"id"`
	Table        string   `json:"table"` // hex of the table plaintext
	Flags        []int    `json:"flags"` // each segment's flag
	SealedLength int      `json:"sealed_length"`
	Sealed       string   `json:"sealed,omitempty"`
	SealedSHA256 string   `json:"sealed_sha256,omitempty"`
	Nonces       []string `json:"nonces,omitempty"`
}

func (v *segmentVector) input() []byte {
	if v.Text != "" {
		return []byte(strings.Repeat(v.Text, v.Length/len(v.Text)+1)[:v.Length])
	}
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	block, _ := aes.NewCipher(key)
	out := make([]byte, v.Length)
	cipher.NewCTR(block, make([]byte, 16)).XORKeyStream(out, out)
	return out
}

// vectorRepository is a repository value (no remote) under the fixed key.
func vectorRepository(t *testing.T, compression string) *Repository {
	mkb := make([]byte, 32)
	for i := range mkb {
		mkb[i] = byte(i)
	}
	mk, err := crypt.MasterKeyFromBytes(mkb)
	if err != nil {
		t.Fatal(err)
	}
	var rid crypt.RepoID
	for i := range rid {
		rid[i] = 0xf0 - byte(i)
	}
	r, err := newRepository(nil, &format.Config{Version: 1, Compression: compression}, rid, mk, Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// makeSegmentVectors seals the cases with this code: three segments, the
// last one short, compressible text (zstd) and keystream (raw); and one
// of a single short segment.
func makeSegmentVectors(t *testing.T) segmentVectors {
	cases := []segmentVector{
		{Name: "three segments, compressed", Text: "sealfs segment vector: compressible text\n", Length: 2*format.SegmentSize + 1000},
		{Name: "three segments, raw (keystream does not compress)", Length: 2*format.SegmentSize + 1000},
		{Name: "one short segment, compressed", Text: "short\n", Length: 100},
	}
	vs := segmentVectors{
		Comment:    "segmented data blobs, docs/SPEC.md §6.2; regenerating them (go test ./repo -run TestSegmentVectors -update) is a format change",
		MasterKey:  "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
		Repository: "f0efeeedecebeae9e8e7e6e5e4e3e2e1",
	}
	key, _ := hkdf.Key(sha256.New, mustHex(t, vs.MasterKey), mustHex(t, vs.Repository), "sealfs v1 segment encryption", 32)
	vs.SegmentKey = hex.EncodeToString(key)
	r := vectorRepository(t, CompressionZstd)
	for _, c := range cases {
		data := c.input()
		id := r.keys.BlobID(crypt.TypeDataBlob, data)
		sealed, err := r.sealSegmented(id, data)
		if err != nil {
			t.Fatal(err)
		}
		c.ID, c.SealedLength = id.String(), len(sealed)
		parts, table := specOpenSegmented(t, key, r.id, id, uint32(len(data)), sealed)
		c.Table = hex.EncodeToString(table)
		if len(sealed) > 4096 {
			c.Nonces = append(c.Nonces, hex.EncodeToString(sealed[:crypt.NonceSize]))
		}
		for _, p := range parts {
			c.Flags = append(c.Flags, int(p.flag))
			if len(sealed) > 4096 {
				c.Nonces = append(c.Nonces, hex.EncodeToString(p.nonce))
			}
		}
		if len(sealed) > 4096 {
			sum := sha256.Sum256(sealed)
			c.SealedSHA256 = hex.EncodeToString(sum[:])
		} else {
			c.Sealed = hex.EncodeToString(sealed)
		}
		vs.Cases = append(vs.Cases, c)
	}
	return vs
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// specPart is one opened part of a segmented blob: its nonce, flag and
// payload (the table has flag 0xff).
type specPart struct {
	nonce   []byte
	flag    byte
	payload []byte
}

// specAD is the associated data of a part, as docs/SPEC.md §6.2 spells it.
func specAD(repo crypt.RepoID, id crypt.ID, index uint32, last bool) []byte {
	ad := append([]byte("sealfs v1 segment\x00"), repo[:]...)
	ad = append(ad, id[:]...)
	ad = binary.BigEndian.AppendUint32(ad, index)
	if last {
		return append(ad, 1)
	}
	return append(ad, 0)
}

// specOpenSegmented opens a segmented blob with the standard library as
// docs/SPEC.md §6.2 describes it, independent of this package's reader:
// the table, then each segment. It returns the segments (table first is
// not included) and the table plaintext.
func specOpenSegmented(t *testing.T, key []byte, repo crypt.RepoID, id crypt.ID, raw uint32, sealed []byte) ([]specPart, []byte) {
	t.Helper()
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(block)
	n := int((raw + 65535) / 65536)
	tl := 28 + 4*n
	table, err := aead.Open(nil, sealed[:12], sealed[12:tl], specAD(repo, id, 0xffffffff, false))
	if err != nil || len(table) != 4*n {
		t.Fatalf("the table does not open as the spec says: %v", err)
	}
	var parts []specPart
	off := tl
	for i := range n {
		l := int(binary.BigEndian.Uint32(table[4*i:]))
		pt, err := aead.Open(nil, sealed[off:off+12], sealed[off+12:off+l], specAD(repo, id, uint32(i), i == n-1))
		if err != nil {
			t.Fatalf("segment %d does not open as the spec says: %v", i, err)
		}
		parts = append(parts, specPart{nonce: sealed[off : off+12], flag: pt[0], payload: pt[1:]})
		off += l
	}
	if off != len(sealed) {
		t.Fatalf("the segments cover %d of %d bytes", off, len(sealed))
	}
	return parts, table
}

// specSealRaw rebuilds a raw-stored segmented blob from its chunk, its
// table and the nonces, with the standard library as the spec says.
func specSealRaw(key []byte, repo crypt.RepoID, id crypt.ID, data, table []byte, nonces [][]byte) []byte {
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(block)
	out := append([]byte(nil), nonces[0]...)
	out = aead.Seal(out, nonces[0], table, specAD(repo, id, 0xffffffff, false))
	n := len(nonces) - 1
	for i := range n {
		seg := data[i*65536 : min(len(data), (i+1)*65536)]
		out = append(out, nonces[i+1]...)
		out = aead.Seal(out, nonces[i+1], append([]byte{0}, seg...), specAD(repo, id, uint32(i), i == n-1))
	}
	return out
}

// TestSegmentVectors checks testdata/vectors/segments.json: each blob opens
// with the standard library as the spec says (a raw one is rebuilt from
// the spec and its nonces, byte for byte), decodes to the chunk, and reads
// back whole and in part through this package's reader.
func TestSegmentVectors(t *testing.T) {
	if *updateSegments {
		b, err := json.MarshalIndent(makeSegmentVectors(t), "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(segmentVectorFile, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(segmentVectorFile)
	if err != nil {
		t.Fatal(err)
	}
	var vs segmentVectors
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	key, _ := hkdf.Key(sha256.New, mustHex(t, vs.MasterKey), mustHex(t, vs.Repository), "sealfs v1 segment encryption", 32)
	if hex.EncodeToString(key) != vs.SegmentKey {
		t.Fatalf("segment key %x, the vectors say %s", key, vs.SegmentKey)
	}
	r := vectorRepository(t, CompressionZstd)
	if len(vs.Cases) != 3 {
		t.Fatalf("%d cases, want 3", len(vs.Cases))
	}
	for _, c := range vs.Cases {
		t.Run(c.Name, func(t *testing.T) { checkSegmentVector(t, r, key, c) })
	}
}

func checkSegmentVector(t *testing.T, r *Repository, key []byte, c segmentVector) {
	data := c.input()
	id, err := crypt.ParseID(c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.keys.BlobID(crypt.TypeDataBlob, data) != id {
		t.Fatal("the id is not BlobID(data blob, chunk)")
	}
	table := mustHex(t, c.Table)
	sealed := mustHex(t, c.Sealed)
	if c.Sealed == "" {
		var nonces [][]byte
		for _, n := range c.Nonces {
			nonces = append(nonces, mustHex(t, n))
		}
		sealed = specSealRaw(key, r.id, id, data, table, nonces)
		if sum := sha256.Sum256(sealed); hex.EncodeToString(sum[:]) != c.SealedSHA256 {
			t.Fatalf("the blob rebuilt from the spec has SHA-256 %x, the vector says %s", sum, c.SealedSHA256)
		}
	}
	if len(sealed) != c.SealedLength {
		t.Fatalf("sealed blob is %d bytes, the vector says %d", len(sealed), c.SealedLength)
	}
	parts, gotTable := specOpenSegmented(t, key, r.id, id, uint32(len(data)), sealed)
	if !bytes.Equal(gotTable, table) {
		t.Fatalf("table %x, the vector says %x", gotTable, table)
	}
	dec, _ := zstd.NewReader(nil)
	defer dec.Close()
	var joined []byte
	for i, p := range parts {
		if int(p.flag) != c.Flags[i] {
			t.Fatalf("segment %d has flag %d, the vector says %d", i, p.flag, c.Flags[i])
		}
		payload := p.payload
		if p.flag == 1 {
			if payload, err = dec.DecodeAll(p.payload, nil); err != nil {
				t.Fatal(err)
			}
		}
		joined = append(joined, payload...)
	}
	if !bytes.Equal(joined, data) {
		t.Fatal("the segments opened as the spec says are not the chunk")
	}
	l := Location{Type: crypt.TypeSegmentedBlob, Length: uint32(len(sealed)), RawLength: uint32(len(data))}
	whole, err := r.openBlob(crypt.TypeDataBlob, id, l, sealed)
	if err != nil || !bytes.Equal(whole, data) {
		t.Fatalf("the reader opens it whole: %v", err)
	}
	for _, rg := range [][2]int{{0, 1}, {len(data) - 1, 1}, {format.SegmentSize - 10, 20}, {0, len(data)}} {
		if rg[0]+rg[1] > len(data) {
			continue
		}
		span, at, err := r.partFrom(context.Background(), id, l, bytesSource(sealed), rg[0], rg[1])
		if err != nil || at%format.SegmentSize != 0 || at > rg[0] || at+len(span) < rg[0]+rg[1] ||
			!bytes.Equal(span, data[at:at+len(span)]) {
			t.Fatalf("the reader reads %d+%d: %v", rg[0], rg[1], err)
		}
	}
}
