package fusefs

import (
	"strings"
	"sync"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
)

// The live tree unloads the folders used least recently once too many
// entries are loaded (worktree.Options.MaxLoaded), but an inode the kernel
// holds stays in memory: the kernel's own, go-fuse's node and the tree's
// Inode. The kernel keeps what it looked up until memory runs short, so a
// listing of a million files would keep them all. The pruner asks it to
// forget the entries of every folder unloaded (FUSE_NOTIFY_PRUNE, or an
// entry invalidation for each where the kernel is older than 6.16): those
// it does not use (open, a working directory) it forgets, and their
// memory goes. Notifications are sent from a goroutine of their own, never
// from a request's: the kernel may wait for a request to finish before it
// takes one.

// pruneBatch is how many nodes one prune notification names.
const pruneBatch = 128

// pruneQueue bounds the folders waiting to be pruned; the oldest beyond it
// are dropped (the kernel forgets them under memory pressure anyway).
const pruneQueue = 4096

// pruner queues the folders to prune; one goroutine sends at a time.
type pruner struct {
	mu      sync.Mutex
	queue   []string
	running bool
	closed  bool
	wg      sync.WaitGroup
}

// pruneUnloaded queues the folders the tree unloaded (paths from the
// root, "/"-separated) for the kernel to forget their entries.
func (f *FS) pruneUnloaded(paths []string) {
	p := &f.pruner
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || !f.mounted.Load() {
		return
	}
	p.queue = append(p.queue, paths...)
	if over := len(p.queue) - pruneQueue; over > 0 {
		p.queue = p.queue[over:]
	}
	if !p.running {
		p.running = true
		p.wg.Go(f.pruneLoop)
	}
}

// pruneLoop prunes the queued folders until none is left.
func (f *FS) pruneLoop() {
	p := &f.pruner
	for {
		p.mu.Lock()
		if len(p.queue) == 0 || p.closed {
			p.running = false
			p.mu.Unlock()
			return
		}
		path := p.queue[0]
		p.queue = p.queue[1:]
		p.mu.Unlock()
		f.prune(path)
	}
}

// prune asks the kernel to forget the entries it holds of the folder at
// path, if it holds the folder.
func (f *FS) prune(path string) {
	dir := f.root.EmbeddedInode()
	if path != "" {
		for name := range strings.SplitSeq(path, "/") {
			if dir = dir.GetChild(name); dir == nil {
				return
			}
		}
	}
	kids := dir.Children()
	nodes := make([]*gofs.Inode, 0, len(kids))
	for _, c := range kids {
		nodes = append(nodes, c)
	}
	for len(nodes) > 0 {
		n := min(len(nodes), pruneBatch)
		if errno := dir.NotifyPrune(nodes[:n]); errno != 0 {
			for name := range kids {
				if errno := dir.NotifyEntry(name); errno != 0 && errno != syscall.ENOENT {
					f.opts.Log.Debug("could not ask the kernel to forget an entry", "path", path, "name", name, "err", errno)
				}
			}
			return
		}
		nodes = nodes[n:]
	}
}

// stopPruning stops the pruner and waits for it.
func (f *FS) stopPruning() {
	p := &f.pruner
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.wg.Wait()
}
