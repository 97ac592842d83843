package rcloneremote

// ReadsLocallyForTest reports whether r reads packs from a local
// directory directly.
func ReadsLocallyForTest(r *Remote) bool { return r.localRoot != "" }
