package queue

import (
	"iter"

	"github.com/google/btree"
)

// Order keeps queued requests in queue order (Less) under inserts, updates
// and removals in O(log n), so that a scheduling pass over a deep queue pays
// for what changed, not for the queue's length. It is not safe for
// concurrent use; the scheduler holds its lock.
type Order struct {
	tree *btree.BTreeG[Request]
	byID map[string]Request
}

// NewOrder returns an empty order.
func NewOrder() *Order {
	return &Order{
		tree: btree.NewG(32, func(a, b Request) bool { return Less(a, b) < 0 }),
		byID: map[string]Request{},
	}
}

// Set inserts r, or replaces the request with r's ID wherever it was.
func (o *Order) Set(r Request) {
	if old, ok := o.byID[r.ID]; ok {
		o.tree.Delete(old)
	}
	o.byID[r.ID] = r
	o.tree.ReplaceOrInsert(r)
}

// Remove drops the request with the given ID, if present.
func (o *Order) Remove(id string) {
	if old, ok := o.byID[id]; ok {
		o.tree.Delete(old)
		delete(o.byID, id)
	}
}

// Get returns the request with the given ID.
func (o *Order) Get(id string) (Request, bool) {
	r, ok := o.byID[id]
	return r, ok
}

// Len is the number of requests.
func (o *Order) Len() int { return o.tree.Len() }

// All yields the requests in queue order; the order must not change while
// it is iterated.
func (o *Order) All() iter.Seq[Request] {
	return func(yield func(Request) bool) {
		o.tree.Ascend(func(r Request) bool { return yield(r) })
	}
}

// Before returns the request just ahead of r in queue order, if any.
func (o *Order) Before(r Request) (Request, bool) {
	var prev Request
	found := false
	o.tree.DescendLessOrEqual(r, func(x Request) bool {
		if x.ID == r.ID {
			return true
		}
		prev, found = x, true
		return false
	})
	return prev, found
}

// After returns the request just behind r in queue order, if any.
func (o *Order) After(r Request) (Request, bool) {
	var next Request
	found := false
	o.tree.AscendGreaterOrEqual(r, func(x Request) bool {
		if x.ID == r.ID {
			return true
		}
		next, found = x, true
		return false
	})
	return next, found
}

// Slice returns the requests in queue order, as a new slice.
func (o *Order) Slice() []Request {
	out := make([]Request, 0, o.tree.Len())
	for r := range o.All() {
		out = append(out, r)
	}
	return out
}
