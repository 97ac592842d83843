// Package crypt holds the cryptographic primitives of the sealfs format and
// nothing else: the random master key and the subkeys derived from it, object
// sealing with AES-256-GCM where the object's type, id and repository id are
// bound in as associated data, keyed blob ids, key slots that wrap the master
// key, and the 64-digit recovery code.
//
// It imports no other sealfs package. docs/SPEC.md describes every construction
// here byte for byte; testdata/vectors holds test vectors made by this code.
package crypt
