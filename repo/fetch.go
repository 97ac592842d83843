package repo

import (
	"context"
	"sync"

	"github.com/sealfs/sealfs/crypt"
)

// fetchGroup fetches each blob from the remote once for everyone who asks
// for it at the same time: readers of the same chunk, and read-ahead.
//
// A shared fetch runs on a context of its own, detached from the caller
// that started it: one caller giving up (an interrupted read) must not
// fail the others. Each caller waits on its own context instead, and the
// fetch is cancelled only when every caller has given up. A background
// fetch (read-ahead) counts as a caller that never gives up.
type fetchGroup struct {
	mu    sync.Mutex
	calls map[crypt.ID]*fetchCall
}

// fetchCall is one shared fetch.
type fetchCall struct {
	done    chan struct{} // closed once data and err are set
	cancel  context.CancelFunc
	waiters int // callers still waiting, guarded by fetchGroup.mu
	data    []byte
	err     error
}

// fetchFunc fetches and verifies one blob.
type fetchFunc func(ctx context.Context) ([]byte, error)

// do returns what fetch returns, from a fetch of id already under way or a
// new one. It returns ctx's error as soon as ctx is done, without waiting
// for the fetch. Callers must not modify the data.
func (g *fetchGroup) do(ctx context.Context, id crypt.ID, fetch fetchFunc) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		// A caller that gave up already starts no request.
		return nil, err
	}
	c, _ := g.join(ctx, id, fetch)
	select {
	case <-c.done:
		return c.data, c.err
	case <-ctx.Done():
		g.leave(id, c)
		return nil, ctx.Err()
	}
}

// start fetches id in the background unless a fetch of it is under way;
// the result goes wherever fetch puts it. It reports whether it started
// one (fetch runs then, and only then).
func (g *fetchGroup) start(ctx context.Context, id crypt.ID, fetch fetchFunc) bool {
	_, started := g.join(ctx, id, fetch)
	return started
}

// join adds a caller to the fetch of id, starting it if none is under way
// (started says so). The fetch's context keeps ctx's values but not its
// cancellation.
func (g *fetchGroup) join(ctx context.Context, id crypt.ID, fetch fetchFunc) (c *fetchCall, started bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c := g.calls[id]; c != nil {
		c.waiters++
		return c, false
	}
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c = &fetchCall{done: make(chan struct{}), cancel: cancel, waiters: 1}
	if g.calls == nil {
		g.calls = map[crypt.ID]*fetchCall{}
	}
	g.calls[id] = c
	go func() {
		data, err := fetch(fctx)
		g.finish(id, c, data, err)
	}()
	return c, true
}

// finish ends call c of id with what it fetched.
func (g *fetchGroup) finish(id crypt.ID, c *fetchCall, data []byte, err error) {
	c.data, c.err = data, err
	c.cancel()
	g.mu.Lock()
	if g.calls[id] == c {
		delete(g.calls, id)
	}
	g.mu.Unlock()
	close(c.done)
}

// claim starts background fetches of the longest prefix of ids of which
// none is under way, for the caller to fetch together and end each with
// finish, then call done. It returns one call per id claimed (none when
// ids[0] is under way) and the context to fetch them on, which has ctx's
// values but not its cancellation: a background fetch has no caller that
// gives up.
func (g *fetchGroup) claim(ctx context.Context, ids []crypt.ID) (fctx context.Context, done context.CancelFunc, calls []*fetchCall) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, id := range ids {
		if g.calls[id] != nil {
			break
		}
		c := &fetchCall{done: make(chan struct{}), cancel: func() {}, waiters: 1}
		if g.calls == nil {
			g.calls = map[crypt.ID]*fetchCall{}
		}
		g.calls[id] = c
		calls = append(calls, c)
	}
	fctx, done = context.WithCancel(context.WithoutCancel(ctx))
	return fctx, done, calls
}

// leave takes a caller that gave up off c; the last one cancels the fetch,
// and a caller that comes after starts a new one.
func (g *fetchGroup) leave(id crypt.ID, c *fetchCall) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c.waiters--; c.waiters > 0 {
		return
	}
	c.cancel()
	if g.calls[id] == c {
		delete(g.calls, id)
	}
}
