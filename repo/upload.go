package repo

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/repo/format"
)

// Finished packs go up in the background, outside every lock, at most
// Options.Transfers at once: the writer goes on filling the next pack
// meanwhile. A pack stays in memory, its blobs readable from there, until
// it is stored; at most Transfers+1 packs are in memory (the one being
// built and those not stored yet), so a writer faster than the remote
// waits for a slot (packSlotLocked) instead of growing without bound.
//
// A pack whose upload failed stays, with the same bytes (packBuilder), and
// holds its slot until an upload of it succeeds: the next Flush or Commit
// tries it again, and so does a writer waiting for a slot. Its blobs are
// in the index already (a later blob with the same content is not stored
// again), which is why a commit waits for every pack not yet stored.

// packUpload is a finished pack that is not stored yet.
type packUpload struct {
	p       *packBuilder
	running bool  // an upload is under way
	err     error // why the last upload failed, while none is under way
	cancel  context.CancelFunc
}

// maxPacks is how many packs may be in memory at once.
func (r *Repository) maxPacks() int { return r.transfers() + 1 }

// finishPackLocked seals the header of the pack being built and starts its
// upload. r.mu is held.
func (r *Repository) finishPackLocked(ctx context.Context) error {
	p := r.packer
	if p == nil || len(p.entries) == 0 {
		return nil
	}
	if _, err := p.finish(r.keys); err != nil {
		return err
	}
	u := &packUpload{p: p}
	r.unstoredPacks[p.id] = u
	r.packer = nil
	r.startUploadLocked(ctx, u)
	return nil
}

// startUploadLocked uploads a finished pack in the background. The upload
// keeps ctx's values but not its cancellation: the pack holds blobs of
// many callers. Unlock cancels it. r.mu is held.
func (r *Repository) startUploadLocked(ctx context.Context, u *packUpload) {
	uctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	u.running, u.err, u.cancel = true, nil, cancel
	r.uploads.Add(1)
	go r.upload(uctx, cancel, u)
}

// upload stores one pack and records the outcome. A cancelled upload is a
// failure like any other: the pack stays for a later try.
func (r *Repository) upload(ctx context.Context, cancel context.CancelFunc, u *packUpload) {
	defer r.uploads.Done()
	err := r.remote.Put(ctx, format.PackName(u.p.id), u.p.buf)
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	cancel()
	r.mu.Lock()
	defer r.mu.Unlock()
	u.running = false
	if err != nil {
		u.err = fmt.Errorf("failed to upload pack %s: %w", u.p.id.Short(), err)
	} else {
		delete(r.unstoredPacks, u.p.id)
		r.packSlots--
		r.pending = append(r.pending, u.p.entries...)
		r.stats.Packs++
		r.stats.PackBytes += uint64(len(u.p.buf))
	}
	close(r.uploadEnded)
	r.uploadEnded = make(chan struct{})
}

// waitUploadLocked releases r.mu until an upload ends or ctx is done.
func (r *Repository) waitUploadLocked(ctx context.Context) error {
	ended := r.uploadEnded
	r.mu.Unlock()
	defer r.mu.Lock()
	select {
	case <-ended:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// packSlotLocked waits until a new pack may be started. While it waits it
// tries the packs whose upload failed once more, and fails when one of
// them fails again: a writer must not wait forever on a remote that keeps
// refusing. r.mu is held (and released while waiting).
func (r *Repository) packSlotLocked(ctx context.Context) error {
	retried := map[*packUpload]bool{}
	for r.packSlots >= r.maxPacks() {
		for _, u := range r.unstoredPacks {
			if u.running {
				continue
			}
			if retried[u] {
				return u.err
			}
			retried[u] = true
			r.startUploadLocked(ctx, u)
		}
		if err := r.waitUploadLocked(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Flush uploads the pack being built, tries again every pack whose upload
// failed, and waits until every pack written so far is stored. It fails
// when one of them fails (the pack stays for a later try) or ctx is done.
func (r *Repository) Flush(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.finishPackLocked(ctx); err != nil {
		return err
	}
	for _, u := range r.unstoredPacks {
		if !u.running {
			r.startUploadLocked(ctx, u)
		}
	}
	return r.waitPacksLocked(ctx, slices.Collect(maps.Keys(r.unstoredPacks)))
}

// waitPacksLocked waits until the packs ids are stored, and fails as soon
// as the upload of one of them fails. r.mu is held (and released while
// waiting).
func (r *Repository) waitPacksLocked(ctx context.Context, ids []crypt.ID) error {
	for {
		waiting := false
		for _, id := range ids {
			u := r.unstoredPacks[id]
			switch {
			case u == nil:
			case !u.running:
				return u.err
			default:
				waiting = true
			}
		}
		if !waiting {
			return nil
		}
		if err := r.waitUploadLocked(ctx); err != nil {
			return err
		}
	}
}

// stopUploads cancels the uploads under way and waits until they have
// ended; the packs stay, as failed ones.
func (r *Repository) stopUploads() {
	r.mu.Lock()
	for _, u := range r.unstoredPacks {
		if u.running {
			u.cancel()
		}
	}
	r.mu.Unlock()
	r.uploads.Wait()
}

// blobFromPacker returns the sealed bytes of a blob in a pack that is not
// stored yet (being built, or on its way up), or nil.
func (r *Repository) blobFromPacker(l Location) []byte {
	r.mu.Lock()
	if r.packer != nil && r.packer.id == l.Pack {
		defer r.mu.Unlock()
		return bytes.Clone(r.packer.buf[l.Offset : l.Offset+l.Length])
	}
	u := r.unstoredPacks[l.Pack]
	r.mu.Unlock()
	if u == nil {
		return nil
	}
	// A finished pack's bytes never change: copied outside the lock.
	return bytes.Clone(u.p.buf[l.Offset : l.Offset+l.Length])
}
