package repo

import "container/list"

// lru keeps entries by key (a blob id, or a part of one) with their sizes,
// most recently used first, and drops the least recently used once the
// sizes pass a limit. It does no locking: its owners do.
type lru[K comparable, V any] struct {
	limit   int64
	size    int64
	order   *list.List // of *lruEntry[K, V]
	items   map[K]*list.Element
	onEvict func(K, V) // called for each entry dropped by add
}

type lruEntry[K comparable, V any] struct {
	id   K
	size int64
	v    V
}

func newLRU[K comparable, V any](limit int64, onEvict func(K, V)) *lru[K, V] {
	return &lru[K, V]{limit: limit, order: list.New(), items: map[K]*list.Element{}, onEvict: onEvict}
}

// get returns the entry and marks it used.
func (c *lru[K, V]) get(id K) (V, bool) {
	el, ok := c.items[id]
	if !ok {
		var zero V
		return zero, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*lruEntry[K, V]).v, true
}

// add inserts an entry (unless present or larger than the limit) as the
// most recently used, and drops the least used ones past the limit.
func (c *lru[K, V]) add(id K, v V, size int64) {
	if _, ok := c.items[id]; ok || size > c.limit {
		return
	}
	c.items[id] = c.order.PushFront(&lruEntry[K, V]{id, size, v})
	c.size += size
	for c.size > c.limit {
		e := c.order.Back().Value.(*lruEntry[K, V])
		c.remove(e.id)
		if c.onEvict != nil {
			c.onEvict(e.id, e.v)
		}
	}
}

// remove forgets an entry.
func (c *lru[K, V]) remove(id K) {
	if el, ok := c.items[id]; ok {
		c.size -= el.Value.(*lruEntry[K, V]).size
		c.order.Remove(el)
		delete(c.items, id)
	}
}
