package worktree

import (
	"slices"
	"sync"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/repo"
)

// A listing starts loading, in the background, the folders below the one
// listed: a walk of the tree (ls -lR, find, rsync, tar) then finds most
// folders loaded when it reaches them, instead of waiting a round trip to
// the remote for each in turn. The folders queued last load first (a
// walk goes depth first: what it listed last is what it reaches next).
//
// Bounds: prefetchWorkers trees are fetched at once; prefetchQueue
// folders wait, the oldest beyond that are left to the walk itself; a
// folder loaded ahead queues its own folders only while fewer than
// prefetchAhead folders loaded ahead have not been listed yet, so a
// listing of the top of a big tree that nobody walks loads a bounded part
// of it. The fetches end when the Tree closes.
const (
	prefetchWorkers = 16
	prefetchQueue   = 1024
	// prefetchLevels is how far below a listed folder its listing looks
	// for folders to queue, through those loaded already.
	prefetchLevels = 2
)

// prefetchAhead bounds the folders loaded ahead and not listed since (a
// variable for tests).
var prefetchAhead = 4096

// prefetchJob is a folder to load.
type prefetchJob struct {
	dir *Inode
	id  crypt.ID
}

// prefetcher runs the background loads: workers are started as jobs come
// and stop when none is left.
type prefetcher struct {
	mu      sync.Mutex
	queue   []prefetchJob   // a stack: the next job is the last
	queued  map[*Inode]bool // in the queue or being loaded
	ahead   map[*Inode]bool // loaded ahead, not listed since
	workers int
	stopped bool
	wg      sync.WaitGroup
}

// aheadOf returns the folders within levels below a folder's entries
// that are not loaded: a listing of a folder loaded ahead queues those
// below the ones loaded with it. t.mu is held.
func aheadOf(entries []child, levels int) []prefetchJob {
	var jobs []prefetchJob
	for _, e := range entries {
		switch c := e.in; {
		case c.meta.Type != repo.NodeDir:
		case c.children == nil:
			jobs = append(jobs, prefetchJob{dir: c, id: c.meta.Subtree})
		case levels > 1:
			jobs = append(jobs, aheadOf(sortedChildren(c), levels-1)...)
		}
	}
	return jobs
}

// listed notes that dir was listed: it no longer counts as loaded ahead.
func (t *Tree) listed(dir *Inode) {
	p := &t.prefetcher
	p.mu.Lock()
	delete(p.ahead, dir)
	p.mu.Unlock()
}

// prefetch queues jobs, the first to run first, dropping the oldest past
// the queue's bound, and starts workers for them.
func (t *Tree) prefetch(jobs []prefetchJob) {
	p := &t.prefetcher
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped || len(jobs) == 0 {
		return
	}
	if p.queued == nil {
		p.queued, p.ahead = map[*Inode]bool{}, map[*Inode]bool{}
	}
	for _, j := range slices.Backward(jobs) {
		if !p.queued[j.dir] {
			p.queued[j.dir] = true
			p.queue = append(p.queue, j)
		}
	}
	if over := len(p.queue) - prefetchQueue; over > 0 {
		for _, j := range p.queue[:over] {
			delete(p.queued, j.dir)
		}
		p.queue = slices.Delete(p.queue, 0, over)
	}
	for p.workers < prefetchWorkers && p.workers < len(p.queue) {
		p.workers++
		p.wg.Go(t.prefetchWorker)
	}
}

// prefetchWorker loads queued folders until none is left.
func (t *Tree) prefetchWorker() {
	p := &t.prefetcher
	for {
		p.mu.Lock()
		if len(p.queue) == 0 || t.life.Err() != nil {
			p.workers--
			p.mu.Unlock()
			return
		}
		j := p.queue[len(p.queue)-1]
		p.queue = p.queue[:len(p.queue)-1]
		p.mu.Unlock()
		next, loaded := t.prefetchOne(j)
		t.notifyUnloaded()
		p.mu.Lock()
		delete(p.queued, j.dir)
		if loaded {
			p.ahead[j.dir] = true
		}
		if len(p.ahead) >= prefetchAhead {
			next = nil
		}
		p.mu.Unlock()
		t.prefetch(next)
	}
}

// prefetchOne loads one folder, unless something else did meanwhile, and
// returns its folders still to load and whether it loaded it. A
// failure is left for the walk to meet and report; a tree with hard links
// is left to it too (it loads the whole tree, load.go), though the fetch
// has cached its blob.
func (t *Tree) prefetchOne(j prefetchJob) ([]prefetchJob, bool) {
	tr, err := t.r.LoadTree(t.life, j.id)
	if err != nil || hasLinkGroups(tr) {
		return nil, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if j.dir.children != nil {
		return nil, false // loaded meanwhile
	}
	t.installLocked(j.dir, j.id, tr)
	if j.dir.children == nil {
		return nil, false
	}
	t.trimLocked()
	if t.overLoadedLocked() || j.dir.children == nil {
		return nil, j.dir.children != nil
	}
	return aheadOf(sortedChildren(j.dir), 1), true
}

// stopPrefetch ends the background loads and waits for them.
func (t *Tree) stopPrefetch() {
	p := &t.prefetcher
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	t.endLife()
	p.wg.Wait()
}
