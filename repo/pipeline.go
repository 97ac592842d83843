package repo

import (
	"bytes"
	"runtime"
	"sync"

	"github.com/sealfs/sealfs/crypt"
)

// sealPipeline computes the ids of a file's chunks and seals them
// (prepareBlob) on one worker per core (sealWorkers), while the writer goes on chunking;
// the writer takes the results back in the order it pushed the chunks.
// At most limit chunks are in the pipeline: a few per worker, each a copy
// of up to the chunker's maximum size, so memory stays bounded.
type sealPipeline struct {
	r     *Repository
	jobs  chan *sealJob
	wg    sync.WaitGroup
	queue []*sealJob // pushed and not taken yet, in order
	limit int
}

// sealJob is one chunk in the pipeline.
type sealJob struct {
	hole bool // a chunk of zero bytes: nothing to seal
	size uint64
	data []byte        // a copy of the chunk, until it is sealed
	done chan struct{} // closed once blob and err are set
	blob preparedBlob
	err  error
}

// sealWorkers is how many chunks are sealed at once: one a core, up to 8
// (8 cores seal faster than any disk or link feeds them; more would only
// hold more chunks in memory).
func sealWorkers() int { return min(runtime.GOMAXPROCS(0), 8) }

// newSealPipeline starts the workers; stop ends them.
func (r *Repository) newSealPipeline() *sealPipeline {
	n := sealWorkers()
	p := &sealPipeline{r: r, jobs: make(chan *sealJob, 2*n), limit: 2 * n}
	p.wg.Add(n)
	for range n {
		go p.work()
	}
	return p
}

func (p *sealPipeline) work() {
	defer p.wg.Done()
	for j := range p.jobs {
		j.blob, j.err = p.r.prepareBlob(crypt.TypeDataBlob, j.data)
		j.data = nil
		close(j.done)
	}
}

// push queues a copy of chunk. The caller keeps at most limit chunks
// queued (next).
func (p *sealPipeline) push(chunk []byte) {
	j := &sealJob{size: uint64(len(chunk)), done: make(chan struct{})}
	if isZero(chunk) {
		j.hole = true
		close(j.done)
	} else {
		j.data = bytes.Clone(chunk)
		p.jobs <- j
	}
	p.queue = append(p.queue, j)
}

// next takes the oldest chunk off the queue: at once if it is ready,
// waiting for it if more than keep are queued; else it returns nil.
func (p *sealPipeline) next(keep int) *sealJob {
	if len(p.queue) == 0 {
		return nil
	}
	j := p.queue[0]
	if len(p.queue) <= keep {
		select {
		case <-j.done:
		default:
			return nil
		}
	}
	<-j.done
	p.queue[0] = nil
	p.queue = p.queue[1:]
	return j
}

// stop ends the workers once they have finished the chunks pushed.
func (p *sealPipeline) stop() {
	close(p.jobs)
	p.wg.Wait()
}
