package repo

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"github.com/sealfs/sealfs/repo/format"
)

// Finished packs go up in the background, outside every lock, oldest
// first and at most Options.Transfers at once: the writer goes on filling
// the next pack meanwhile. A pack stays in memory, its blobs readable from
// there, until it is stored; at most Transfers+1 packs are in memory (the
// one being built and those not stored yet), so a writer faster than the
// remote waits for a slot (packSlotLocked) instead of growing without
// bound.
//
// A pack whose upload failed stays, with the same bytes (packBuilder), and
// holds its slot until an upload of it succeeds: the next Flush or Commit
// tries it again, and so does a writer waiting for a slot. Its blobs are
// in the index already (a later blob with the same content is not stored
// again), which is why a commit waits for every pack not yet stored.

// packUpload is a finished pack that is not stored yet: queued, uploading
// (running), or failed (err set).
type packUpload struct {
	p       *packBuilder
	ctx     context.Context // values for the upload, without cancellation
	running bool
	tries   int   // uploads started
	err     error // why the last upload failed; nil while queued or running
	cancel  context.CancelFunc
}

// maxPacks is how many packs may be in memory at once.
func (r *Repository) maxPacks() int { return r.transfers() + 1 }

// finishPackLocked seals the header of the pack being built and queues it
// for upload. r.mu is held.
func (r *Repository) finishPackLocked(ctx context.Context) error {
	p := r.packer
	if p == nil || len(p.entries) == 0 {
		return nil
	}
	if _, err := p.finish(r.keys); err != nil {
		return err
	}
	r.outgoing = append(r.outgoing, &packUpload{p: p, ctx: context.WithoutCancel(ctx)})
	r.packer = nil
	r.startUploadsLocked()
	return nil
}

// startUploadsLocked starts the uploads of queued packs, oldest first,
// while fewer than Transfers run. An upload keeps the values of the
// context of the call that queued its pack, not its cancellation: a pack
// holds blobs of many callers. Unlock cancels it. r.mu is held.
func (r *Repository) startUploadsLocked() {
	if r.stopped {
		return
	}
	for _, u := range r.outgoing {
		if r.running >= r.transfers() {
			return
		}
		if u.running || u.err != nil {
			continue
		}
		ctx, cancel := context.WithCancel(u.ctx)
		u.running, u.cancel = true, cancel
		u.tries++
		r.running++
		r.uploads.Add(1)
		go r.upload(ctx, cancel, u)
	}
}

// retryLocked queues the packs whose upload failed again, and returns
// them. r.mu is held.
func (r *Repository) retryLocked() []*packUpload {
	if r.stopped {
		return nil // they stay failed: nothing would upload them
	}
	var failed []*packUpload
	for _, u := range r.outgoing {
		if u.err != nil {
			u.err = nil
			failed = append(failed, u)
		}
	}
	r.startUploadsLocked()
	return failed
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
	r.running--
	if err != nil {
		u.err = fmt.Errorf("failed to upload pack %s: %w", u.p.id.Short(), err)
	} else {
		r.outgoing = slices.DeleteFunc(r.outgoing, func(o *packUpload) bool { return o == u })
		r.packSlots--
		r.pending = append(r.pending, u.p.entries...)
		r.stats.Packs++
		r.stats.PackBytes += uint64(len(u.p.buf))
		r.reuseLocked(u)
	}
	r.startUploadsLocked()
	close(r.uploadEnded)
	r.uploadEnded = make(chan struct{})
}

// reuseLocked keeps the buffer of pack u, stored, as the spare for the
// next pack, while a pack is being built and u was stored at its first
// try: no earlier, failed try of it can still be reading the buffer. The
// buffer is no one's now: blobFromPacker copies under r.mu, and a Put
// that returned keeps no reference (remote.Remote). r.mu is held.
func (r *Repository) reuseLocked(u *packUpload) {
	buf := u.p.buf
	u.p.buf = nil
	switch {
	case r.packSlots == 0:
		r.spare = nil // no pack in memory: neither is a spare
	case u.tries == 1 && r.spare == nil:
		r.spare = buf
	}
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
		if r.stopped {
			return ErrReadOnly
		}
		for _, u := range r.outgoing {
			if u.err != nil && retried[u] {
				return u.err
			}
		}
		for _, u := range r.retryLocked() {
			retried[u] = true
		}
		if err := r.waitUploadLocked(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Flush uploads the pack being built, tries again every pack whose upload
// failed, and waits until the upload of every pack written so far has
// ended. It fails when one of them failed (the pack stays for a later try;
// the others are stored all the same) or ctx is done.
func (r *Repository) Flush(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.finishPackLocked(ctx); err != nil {
		return err
	}
	r.retryLocked()
	wait := slices.Clone(r.outgoing)
	for {
		waiting := false
		var failed error
		for _, u := range wait {
			switch {
			case !slices.Contains(r.outgoing, u): // stored
			case u.err != nil:
				if failed == nil {
					failed = u.err
				}
			default:
				waiting = true
			}
		}
		if !waiting {
			return failed
		}
		if err := r.waitUploadLocked(ctx); err != nil {
			return err
		}
	}
}

// stopUploads cancels the uploads under way and waits until they have
// ended; their packs, and those queued, stay as failed ones, and no upload
// starts again until Lock. (A queued pack that started once its
// predecessor was cancelled would hang Unlock for as long as the remote
// does.)
func (r *Repository) stopUploads() {
	r.mu.Lock()
	r.stopped = true
	for _, u := range r.outgoing {
		switch {
		case u.running:
			u.cancel()
		case u.err == nil:
			u.err = fmt.Errorf("pack %s not uploaded: the writer stopped", u.p.id.Short())
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
	defer r.mu.Unlock()
	for _, u := range r.outgoing {
		if u.p.id == l.Pack {
			// Copied under the lock: once stored, the buffer may be the
			// next pack's (reuseLocked).
			return bytes.Clone(u.p.buf[l.Offset : l.Offset+l.Length])
		}
	}
	return nil
}

// PackMemory returns how many bytes the packs this writer holds in memory
// may take: the one being built, those on their way up and the spare
// buffer, each at most 9/8 of the pack size. The mount's memory governor adds it to its base.
func (r *Repository) PackMemory() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.packSlots
	if r.spare != nil {
		n++
	}
	return int64(n) * int64(r.packCapacity())
}

// packCapacity is the memory of one pack being built: the pack size and
// room for the blob that passes it.
func (r *Repository) packCapacity() int { return r.cfg.PackSize + r.cfg.PackSize/8 }
