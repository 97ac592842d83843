package repo

import (
	"container/list"

	"github.com/sealfs/sealfs/crypt"
)

// lru keeps entries by blob id with their sizes, most recently used first,
// and drops the least recently used once the sizes pass a limit. It does no
// locking: its owners do.
type lru[V any] struct {
	limit   int64
	size    int64
	order   *list.List // of *lruEntry[V]
	items   map[crypt.ID]*list.Element
	onEvict func(crypt.ID, V) // called for each entry dropped by add
}

type lruEntry[V any] struct {
	id   crypt.ID
	size int64
	v    V
}

func newLRU[V any](limit int64, onEvict func(crypt.ID, V)) *lru[V] {
	return &lru[V]{limit: limit, order: list.New(), items: map[crypt.ID]*list.Element{}, onEvict: onEvict}
}

// get returns the entry and marks it used.
func (c *lru[V]) get(id crypt.ID) (V, bool) {
	el, ok := c.items[id]
	if !ok {
		var zero V
		return zero, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*lruEntry[V]).v, true
}

// add inserts an entry (unless present or larger than the limit) as the
// most recently used, and drops the least used ones past the limit.
func (c *lru[V]) add(id crypt.ID, v V, size int64) {
	if _, ok := c.items[id]; ok || size > c.limit {
		return
	}
	c.items[id] = c.order.PushFront(&lruEntry[V]{id, size, v})
	c.size += size
	for c.size > c.limit {
		e := c.order.Back().Value.(*lruEntry[V])
		c.remove(e.id)
		if c.onEvict != nil {
			c.onEvict(e.id, e.v)
		}
	}
}

// remove forgets an entry.
func (c *lru[V]) remove(id crypt.ID) {
	if el, ok := c.items[id]; ok {
		c.size -= el.Value.(*lruEntry[V]).size
		c.order.Remove(el)
		delete(c.items, id)
	}
}
