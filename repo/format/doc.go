// Package format is the sealfs repository format of docs/SPEC.md as pure
// codecs: the names of the objects on the remote, the config, pack
// headers, index objects, trees, snapshots, forget records and the writer
// lease, each encoded canonically and decoded strictly, and the size limits
// a reader enforces. It does no I/O and keeps no state: bytes in, values
// out. Sealing is crypt's; opening, committing, reading and checking a
// repository is repo's.
package format
