// Package repo is the sealfs chunk store: the repository on a remote, made of
// a config object, key slots, packs of encrypted blobs, index objects, tree
// blobs and snapshot objects, plus a writer lease. It opens a repository with
// a key slot, stores files and directories deduplicated by content-defined
// chunking, commits snapshots, reads everything back verified, and checks a
// whole repository. docs/SPEC.md is its format, byte for byte; the codecs of
// that format, without any I/O, are in repo/format.
package repo
