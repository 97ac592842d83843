package format

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sealfs/sealfs/chunker"
	"github.com/sealfs/sealfs/crypt"
)

// FormatVersion is the repository format version this package reads and writes.
const FormatVersion = 1

// Compression settings of a repository.
const (
	CompressionZstd = "zstd"
	CompressionNone = "none"
)

// Config is the repository's config object (docs/SPEC.md §5). It is public
// (the storage provider can read it) and authenticated by a MAC under a key
// derived from the master key, checked as soon as the key is unlocked.
type Config struct {
	Version     int       `json:"version"`
	Repository  string    `json:"repository"` // hex of the 16-byte repository id
	Created     time.Time `json:"created"`
	ChunkMin    int       `json:"chunk_min"`
	ChunkAvg    int       `json:"chunk_avg"`
	ChunkMax    int       `json:"chunk_max"`
	PackSize    int       `json:"pack_size"`
	Compression string    `json:"compression"`
}

// ErrVersion: the config names a format version this package does not
// read (a newer sealfs wrote the repository).
var ErrVersion = errors.New("the repository's format version is not supported by this sealfs")

// Chunking returns the chunker parameters of the repository.
func (c *Config) Chunking() chunker.Params {
	return chunker.Params{Min: c.ChunkMin, Avg: c.ChunkAvg, Max: c.ChunkMax}
}

// Validate checks that the config describes a repository this version can
// read and write.
func (c *Config) Validate() error {
	if c.Version != FormatVersion {
		return fmt.Errorf("%w: it is version %d, this sealfs reads version %d", ErrVersion, c.Version, FormatVersion)
	}
	if _, err := crypt.ParseRepoID(c.Repository); err != nil {
		return err
	}
	if err := c.Chunking().Validate(); err != nil {
		return err
	}
	if c.PackSize < 1<<20 || c.PackSize > 1<<30 {
		return fmt.Errorf("pack size %d is outside 1 MiB..1 GiB", c.PackSize)
	}
	if c.Compression != CompressionZstd && c.Compression != CompressionNone {
		return fmt.Errorf("unknown compression %q", c.Compression)
	}
	return nil
}

// EncodeConfig returns the config object: the JSON body, a newline, the
// hex HMAC-SHA256 of the body's exact bytes under the config MAC key, a
// newline.
func EncodeConfig(c *Config, keys *crypt.Keys) ([]byte, error) {
	body, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Write(body)
	b.WriteByte('\n')
	b.WriteString(hex.EncodeToString(keys.ConfigMAC(body)))
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// ParseConfig splits and parses a config object without checking its MAC,
// which needs the key: once the key is unlocked, the caller must check mac
// over the exact bytes of body (crypt.Keys.VerifyConfigMAC) before using
// any field but the repository id.
func ParseConfig(obj []byte) (cfg *Config, body, mac []byte, err error) {
	if len(obj) > MaxConfigObject {
		return nil, nil, nil, fmt.Errorf("config object is %d bytes, over the %d-byte limit", len(obj), MaxConfigObject)
	}
	body, rest, ok := bytes.Cut(obj, []byte{'\n'})
	if !ok {
		return nil, nil, nil, errors.New("config object has no MAC line")
	}
	macHex, rest, ok := bytes.Cut(rest, []byte{'\n'})
	if !ok || len(rest) != 0 {
		return nil, nil, nil, errors.New("config object does not end with its MAC line")
	}
	mac, err = hex.DecodeString(string(macHex))
	if err != nil || len(mac) != 32 {
		return nil, nil, nil, errors.New("config object MAC is not 64 hex digits")
	}
	var c Config
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, nil, nil, fmt.Errorf("failed to parse config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, nil, nil, err
	}
	return &c, body, mac, nil
}
