package repo

// SealSlotsInUseForTest returns how many chunks the seal pipelines of r
// hold now.
func SealSlotsInUseForTest(r *Repository) int { return len(r.sealSlots) }
