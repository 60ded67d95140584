package consumer

import (
	"context"
	"errors"
	"sync"
)

// MemoryBudget bounds the record data a Consumer holds, over all its shards: the bytes of records
// read from Kinesis and not yet acknowledged by every sink (nor dropped because the shard
// stopped). It is what keeps the process's memory a function of the budget rather than of the
// number of shards, the read size or the speed of the sinks.
//
// Before each GetRecords call a shard reserves what the read may return (at most MaxRead bytes,
// less when its records are small enough that max_records_per_read of them need less) and waits
// while the budget cannot take it: reads are sized to the budget, and a shard reads only when its
// share is free. Waiters are served in arrival order, so no shard starves. After the read the
// reservation is settled to the records' actual size; a read larger than reserved (records larger
// than the shard's average so far) is let in over the limit rather than dropped, and the next
// reservations wait for it to come back. Each batch's bytes return when the tracker retires it.
//
// A MemoryBudget is safe for concurrent use.
type MemoryBudget struct {
	limit   int64
	maxRead int64

	mu      sync.Mutex
	used    int64
	waiters []*budgetWaiter // oldest first
	// pressure is signalled when a reservation has to wait (see Pressure).
	pressure chan struct{}
}

type budgetWaiter struct {
	n     int64
	ready chan struct{} // closed once n is granted
}

// NewMemoryBudget makes a budget of limit bytes (at least 1) whose reads reserve at most maxRead
// bytes each (clamped to 1 .. limit).
func NewMemoryBudget(limit, maxRead int64) *MemoryBudget {
	limit = max(limit, 1)
	maxRead = min(max(maxRead, 1), limit)
	return &MemoryBudget{limit: limit, maxRead: maxRead, pressure: make(chan struct{}, 1)}
}

// Limit is the budget's size in bytes.
func (b *MemoryBudget) Limit() int64 { return b.limit }

// MaxRead is the most one read reserves.
func (b *MemoryBudget) MaxRead() int64 { return b.maxRead }

// Used is the bytes reserved or held now (it may exceed Limit by reads larger than reserved).
func (b *MemoryBudget) Used() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// waiting reports whether a reservation is waiting now.
func (b *MemoryBudget) waiting() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.waiters) > 0
}

// Pressure is signalled (without blocking; one pending signal at most) each time a reservation
// has to wait: what is held has reached the budget.
func (b *MemoryBudget) Pressure() <-chan struct{} { return b.pressure }

// acquire reserves n bytes (clamped to 1 .. Limit), waiting in arrival order until they fit. It
// returns the bytes reserved, or ctx's error with nothing reserved.
func (b *MemoryBudget) acquire(ctx context.Context, n int64, waiting func(bool)) (int64, error) {
	n = min(max(n, 1), b.limit)
	b.mu.Lock()
	if len(b.waiters) == 0 && b.used+n <= b.limit {
		b.used += n
		b.mu.Unlock()
		return n, nil
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	select {
	case b.pressure <- struct{}{}:
	default:
	}
	b.mu.Unlock()
	if waiting != nil {
		waiting(true)
		defer waiting(false)
	}
	select {
	case <-w.ready:
		return n, nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-w.ready: // granted as ctx ended: give it back
		b.used -= n
	default:
		for i, x := range b.waiters {
			if x == w {
				b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
				break
			}
		}
	}
	b.grantLocked()
	return 0, ctx.Err()
}

// force adds n bytes without waiting (what a read brought beyond its reservation).
func (b *MemoryBudget) force(n int64) {
	if n <= 0 {
		return
	}
	b.mu.Lock()
	b.used += n
	b.mu.Unlock()
}

// release returns n bytes and lets waiters in, oldest first.
func (b *MemoryBudget) release(n int64) {
	if n <= 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	b.grantLocked()
	b.mu.Unlock()
}

func (b *MemoryBudget) grantLocked() {
	for len(b.waiters) > 0 && b.used+b.waiters[0].n <= b.limit {
		w := b.waiters[0]
		b.waiters[0] = nil
		b.waiters = b.waiters[1:]
		b.used += w.n
		close(w.ready)
	}
}

// shardAccount is one shard worker's share of a MemoryBudget: what it holds is added here and
// returned through it, and close returns whatever is left when the worker ends (its records are
// then no longer the worker's to hold), after which returns are ignored. A nil *shardAccount
// (no budget) accepts every call and holds nothing. Safe for concurrent use.
type shardAccount struct {
	budget *MemoryBudget
	mu     sync.Mutex
	held   int64
	closed bool
}

// probeRecordSize is the record size a shard's reservations assume until it has read a record.
const probeRecordSize = 1 << 20

// errAccountClosed is returned by reserve once the shard's worker has ended.
var errAccountClosed = errors.New("the shard's worker has ended")

func newShardAccount(b *MemoryBudget) *shardAccount {
	if b == nil {
		return nil
	}
	return &shardAccount{budget: b}
}

// reserve reserves room for one read and returns it with the read's record limit: at most
// maxRecords, fewer when the shard's average record size says maxRecords would not fit in
// MaxRead. waiting is told when the call has to wait and when it stops waiting.
func (a *shardAccount) reserve(ctx context.Context, maxRecords int32, average float64, waiting func(bool)) (int64, int32, error) {
	if a == nil {
		return 0, maxRecords, nil
	}
	want := a.budget.maxRead
	limit := maxRecords
	switch {
	case average <= 0:
		// Nothing read yet: ask for as many records of 1 MiB (Kinesis's usual largest) as fit.
		limit = int32(min(int64(maxRecords), max(1, want/probeRecordSize)))
	case float64(maxRecords)*average < float64(want):
		want = int64(float64(maxRecords)*average) + 1
	default:
		limit = int32(max(1, float64(want)/average))
	}
	got, err := a.budget.acquire(ctx, want, waiting)
	if err != nil {
		return 0, limit, err
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		a.budget.release(got)
		return 0, limit, errAccountClosed
	}
	a.held += got
	a.mu.Unlock()
	return got, limit, nil
}

// settle turns a reservation of reserved bytes into what the read holds: actual bytes.
func (a *shardAccount) settle(reserved, actual int64) {
	if a == nil {
		return
	}
	switch {
	case actual < reserved:
		a.give(reserved - actual)
	case actual > reserved:
		a.mu.Lock()
		if !a.closed {
			a.held += actual - reserved
			a.budget.force(actual - reserved)
		}
		a.mu.Unlock()
	}
}

// give returns n bytes the shard no longer holds (never more than it holds).
func (a *shardAccount) give(n int64) {
	if a == nil || n <= 0 {
		return
	}
	a.mu.Lock()
	n = min(n, a.held)
	a.held -= n
	a.mu.Unlock()
	a.budget.release(n)
}

// holding returns the bytes the shard holds now.
func (a *shardAccount) holding() int64 {
	if a == nil {
		return 0
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.held
}

// close returns everything the shard still holds; later gives are ignored.
func (a *shardAccount) close() {
	if a == nil {
		return
	}
	a.mu.Lock()
	n := a.held
	a.held = 0
	a.closed = true
	a.mu.Unlock()
	a.budget.release(n)
}
