package worktree

import (
	"sync"

	"github.com/sealfs/sealfs/crypt"
	"github.com/sealfs/sealfs/repo"
)

// A listing starts loading the folders it shows in the background, and
// theirs: a walk of the tree (ls -lR, find, rsync, tar) then finds most
// folders loaded when it reaches them, instead of waiting a round trip to
// the remote for each in turn. At most prefetchWorkers trees are fetched
// at once and prefetchQueue folders wait; more are left to the walk
// itself. The fetches end when the Tree closes.
const (
	prefetchWorkers = 8
	prefetchQueue   = 1024
	// prefetchLevels is how many levels below a listed folder load.
	prefetchLevels = 2
)

// prefetchJob is a folder to load, and how many levels below it to go on.
type prefetchJob struct {
	dir    *Inode
	id     crypt.ID
	levels int
}

// prefetcher runs the background loads: workers are started as jobs come
// and stop when none is left.
type prefetcher struct {
	mu      sync.Mutex
	queue   []prefetchJob
	queued  map[*Inode]bool // in the queue or being loaded
	workers int
	stopped bool
	wg      sync.WaitGroup
}

// subdirs returns the folders among a folder's entries that are not
// loaded, as jobs going levels deep. t.mu is held.
func subdirs(entries []child, levels int) []prefetchJob {
	var jobs []prefetchJob
	for _, e := range entries {
		if c := e.in; c.meta.Type == repo.NodeDir && c.children == nil {
			jobs = append(jobs, prefetchJob{dir: c, id: c.meta.Subtree, levels: levels})
		}
	}
	return jobs
}

// prefetch queues jobs, dropping those past the queue's bound, and starts
// workers for them.
func (t *Tree) prefetch(jobs []prefetchJob) {
	p := &t.prefetcher
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	if p.queued == nil {
		p.queued = map[*Inode]bool{}
	}
	for _, j := range jobs {
		if len(p.queue) >= prefetchQueue {
			break
		}
		if !p.queued[j.dir] {
			p.queued[j.dir] = true
			p.queue = append(p.queue, j)
		}
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
		j := p.queue[0]
		if p.queue = p.queue[1:]; len(p.queue) == 0 {
			p.queue = nil
		}
		p.mu.Unlock()
		next := t.prefetchOne(j)
		p.mu.Lock()
		delete(p.queued, j.dir)
		p.mu.Unlock()
		t.prefetch(next)
	}
}

// prefetchOne loads one folder, unless something else did meanwhile, and
// returns the jobs for the level below. A failure is left for the walk to
// meet and report; a tree with hard links is left to it too (it loads
// the whole tree, load.go), though the fetch has cached its blob.
func (t *Tree) prefetchOne(j prefetchJob) []prefetchJob {
	tr, err := t.r.LoadTree(t.life, j.id)
	if err != nil || hasLinkGroups(tr) {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.installLocked(j.dir, j.id, tr)
	if j.levels <= 1 || j.dir.children == nil {
		return nil
	}
	return subdirs(sortedChildren(j.dir), j.levels-1)
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
