package repo

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"time"

	"github.com/sealfs/sealfs/chunker"
	"github.com/sealfs/sealfs/crypt"
)

// FormatVersion is the repository format version this package reads and writes.
const FormatVersion = 1

// Object names on the remote (docs/SPEC.md, "Layout").
const (
	configName   = "config"
	leaseName    = "lease"
	keysDir      = "keys"
	dataDir      = "data"
	indexDir     = "index"
	snapshotsDir = "snapshots"
)

func packName(id crypt.ID) string     { s := id.String(); return dataDir + "/" + s[:2] + "/" + s }
func indexName(id crypt.ID) string    { return indexDir + "/" + id.String() }
func snapshotName(id crypt.ID) string { return snapshotsDir + "/" + id.String() }
func slotName(id crypt.ID) string     { return keysDir + "/" + id.String() }

// MetadataFolder reports whether dir is a folder of the objects a
// repository is opened from (key slots, snapshots, indexes).
func MetadataFolder(dir string) bool { return dir == keysDir || dir == snapshotsDir || dir == indexDir }

// MetadataName reports whether name is exactly the name of an object a
// repository is opened from: the config, or a key slot, snapshot, forget
// record or index named by its id in lower-case hex. Anything else
// (another case, "..", another slash, a NUL) is not.
func MetadataName(name string) bool {
	if name == configName {
		return true
	}
	id, err := crypt.ParseID(path.Base(name))
	return err == nil && (name == slotName(id) || name == snapshotName(id) || name == forgetName(id) || name == indexName(id))
}

// Compression settings of a repository.
const (
	CompressionZstd = "zstd"
	CompressionNone = "none"
)

// Config is the repository's config object. It is public (the storage
// provider can read it) and authenticated by a MAC under a key derived from
// the master key, checked as soon as the key is unlocked.
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

const maxConfigSize = 16 << 10

// Chunking returns the chunker parameters of the repository.
func (c *Config) Chunking() chunker.Params {
	return chunker.Params{Min: c.ChunkMin, Avg: c.ChunkAvg, Max: c.ChunkMax}
}

func (c *Config) validate() error {
	if c.Version != FormatVersion {
		return fmt.Errorf("repository format version %d is not supported by this sealfs (it reads version %d); upgrade sealfs", c.Version, FormatVersion)
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

// encodeConfig returns the config object: the JSON body, a newline, the hex
// HMAC-SHA256 of the body's exact bytes under the config MAC key, a newline.
func encodeConfig(c *Config, keys *crypt.Keys) ([]byte, error) {
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

// parseConfig splits and parses a config object without checking its MAC,
// which needs the key: call verifyConfig once the key is unlocked.
func parseConfig(obj []byte) (cfg *Config, body, mac []byte, err error) {
	if len(obj) > maxConfigSize {
		return nil, nil, nil, fmt.Errorf("config object is %d bytes, over the %d-byte limit", len(obj), maxConfigSize)
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
	if err := c.validate(); err != nil {
		return nil, nil, nil, err
	}
	return &c, body, mac, nil
}
