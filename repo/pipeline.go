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
	slot bool // it holds one of the repository's sealSlots
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
		if j.err == nil && j.blob.sealed != nil {
			// Sealed: the copy is needed no more (addBlob uses a
			// blob's data only when it was not sealed).
			data := j.data
			chunkCopies.Put(&data)
			j.blob.data = nil
		}
		j.data = nil
		close(j.done)
	}
}

// chunkCopies holds the buffers (*[]byte) of the chunks' copies in
// pipelines, and sealedBufs those of sealed data blobs, given back once
// their bytes are in a pack: a sequential write allocated both for every
// chunk (each zeroed or copied in whole, and the collector's work).
var chunkCopies, sealedBufs sync.Pool

// sealedBuf returns an empty buffer of at least n bytes' capacity.
func sealedBuf(n int) []byte {
	if b, ok := sealedBufs.Get().(*[]byte); ok && cap(*b) >= n {
		return (*b)[:0]
	}
	return make([]byte, 0, n)
}

// putSealed gives back the buffer of a sealed data blob whose bytes are in
// a pack (packBuilder.add copies them) or were not needed.
func putSealed(b *preparedBlob) {
	if b.sealed != nil && b.t == crypt.TypeDataBlob {
		buf := b.sealed.sealed[:0]
		b.sealed = nil
		sealedBufs.Put(&buf)
	}
}

// cloneChunk copies chunk into a buffer of chunkCopies.
func cloneChunk(chunk []byte) []byte {
	if b, ok := chunkCopies.Get().(*[]byte); ok && cap(*b) >= len(chunk) {
		return append((*b)[:0], chunk...)
	}
	return bytes.Clone(chunk)
}

// The chunks in all the pipelines of a repository (the files written at
// once) are bounded too, by sealSlots: a repository holds at most
// 2*sealWorkers() chunks in pipelines (each a copy, then a sealed one), not
// that many per file being written. A writer that finds none free stores
// its chunks inline.

// newSealSlots makes a repository's budget of chunks in pipelines.
func newSealSlots() chan struct{} { return make(chan struct{}, 2*sealWorkers()) }

// push queues a copy of chunk, unless it is not zeros and no slot of the
// repository's budget is free: then it reports false and queues nothing.
// The caller keeps at most limit chunks queued (next).
func (p *sealPipeline) push(chunk []byte) bool {
	j := &sealJob{size: uint64(len(chunk)), done: make(chan struct{})}
	if isZero(chunk) {
		j.hole = true
		close(j.done)
	} else {
		select {
		case p.r.sealSlots <- struct{}{}:
			j.slot = true
		default:
			return false
		}
		j.data = cloneChunk(chunk)
		p.jobs <- j
	}
	p.queue = append(p.queue, j)
	return true
}

// release gives j's slot back, once.
func (p *sealPipeline) release(j *sealJob) {
	if j.slot {
		j.slot = false
		<-p.r.sealSlots
	}
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
	p.release(j)
	p.queue[0] = nil
	p.queue = p.queue[1:]
	return j
}

// stop ends the workers once they have finished the chunks pushed, and
// gives back the slots of those not taken.
func (p *sealPipeline) stop() {
	close(p.jobs)
	p.wg.Wait()
	for _, j := range p.queue {
		p.release(j)
	}
}
