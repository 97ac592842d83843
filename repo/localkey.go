package repo

import "github.com/sealfs/sealfs/crypt"

// LocalKey returns the key that seals the mount's local state (staging
// area and journal, docs/SPEC.md §12): it exists only once the repository
// is unlocked.
func (r *Repository) LocalKey() crypt.LocalKey { return r.keys.LocalKey() }
