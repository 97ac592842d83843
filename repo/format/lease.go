package format

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/sealfs/sealfs/crypt"
)

// Lease is the writer lease object (docs/SPEC.md §10): who holds the
// repository for writing, and until when. It is sealed with the all-zero
// object id.
type Lease struct {
	Holder   crypt.ID  `json:"holder"` // random per holder
	Host     string    `json:"host"`
	PID      int       `json:"pid"`
	Acquired time.Time `json:"acquired"`
	Expires  time.Time `json:"expires"`
}

// String says who holds the lease, since when and until when.
func (l *Lease) String() string {
	return fmt.Sprintf("host %s pid %d since %s (valid until %s)", l.Host, l.PID,
		l.Acquired.Local().Format(time.DateTime), l.Expires.Local().Format(time.DateTime))
}

// EncodeLease encodes the lease's plaintext: JSON.
func EncodeLease(l *Lease) ([]byte, error) { return json.Marshal(l) }

// DecodeLease parses the lease's plaintext.
func DecodeLease(b []byte) (*Lease, error) {
	if len(b) > MaxLeaseSize {
		return nil, fmt.Errorf("the lease is %d bytes, over the %d-byte limit", len(b), MaxLeaseSize)
	}
	var l Lease
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, err
	}
	return &l, nil
}
