// Package humanize formats quantities for people: byte counts in binary
// units, as the command, the status document's summary and systemd's
// STATUS line show them.
package humanize

import "fmt"

// Bytes formats n bytes with one decimal in binary units ("1.5 MiB"),
// below 1 KiB as plain bytes ("512 B").
func Bytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
