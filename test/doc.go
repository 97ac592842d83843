// Package test holds sealfs' end-to-end tests: they build the real sealfs
// binary and run it as a user would, against real rclone remotes.
package test
