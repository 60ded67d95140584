package consumer

import (
	"context"
	"sync"

	"github.com/shardhose/shardhose/record"
)

// tracker decides how far a shard may be checkpointed. Batches are registered in read order;
// each is complete once every party it was handed to (each sink, later the dead-letter
// destination) has acknowledged it. The safe position is the last position of the longest
// prefix of complete batches: everything at or before it is delivered, so a restart from there
// loses nothing.
//
// It also bounds memory: add blocks while the records registered but not yet complete reach the
// cap, which stops the shard's reader (backpressure).
//
// A tracker is safe for concurrent use: acks come from sink goroutines.
type tracker struct {
	mu       sync.Mutex
	batches  []*ticket // registered, oldest first; complete ones are popped from the front
	safe     record.Position
	inFlight int
	// completed counts the records of batches that left the front of the queue (safe to checkpoint).
	completed int64
	maxIn     int
	room      chan struct{} // closed and replaced whenever inFlight drops or safe moves
	// advanced is signalled (non-blocking) whenever safe moves.
	advanced chan struct{}
	// account gets back each batch's bytes when the batch is retired or withdrawn; nil: no
	// memory budget.
	account *shardAccount
}

// ticket is one batch's claim on the tracker; ack it once per party.
type ticket struct {
	t       *tracker
	last    record.Position
	records int
	pending int
	upTo    record.Position // finished up to here inside the batch (progress), or zero
	bytes   int64           // the records' data, returned to the account when retired
}

func newTracker(start record.Position, maxInFlight int) *tracker {
	return &tracker{
		safe:     start,
		maxIn:    maxInFlight,
		room:     make(chan struct{}),
		advanced: make(chan struct{}, 1),
	}
}

// add registers a batch of n records of bytes bytes of data ending at last, to be acknowledged by
// parties parties.
// It blocks while the cap on in-flight records is reached (a batch larger than the cap is let
// in once nothing else is in flight, so it cannot wait forever).
func (t *tracker) add(ctx context.Context, last record.Position, n int, bytes int64, parties int) (*ticket, error) {
	for {
		t.mu.Lock()
		if t.inFlight == 0 || t.inFlight+n <= t.maxIn {
			tk := &ticket{t: t, last: last, records: n, pending: parties, bytes: bytes}
			t.batches = append(t.batches, tk)
			t.inFlight += n
			if parties == 0 {
				t.advanceLocked()
			}
			t.mu.Unlock()
			return tk, nil
		}
		room := t.room
		t.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-room:
		}
	}
}

// ack records that one party delivered the ticket's batch.
func (k *ticket) ack() {
	t := k.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if k.pending <= 0 {
		return
	}
	k.pending--
	if k.pending == 0 {
		t.advanceLocked()
	}
}

// progress records that the ticket's batch is finished up to pos, a position inside it: when it
// is the oldest unfinished batch, the safe position moves to pos.
func (k *ticket) progress(pos record.Position) {
	t := k.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if k.pending <= 0 || pos.Compare(k.upTo) <= 0 || pos.Compare(k.last) > 0 {
		return
	}
	k.upTo = pos
	t.advanceLocked()
}

func (t *tracker) advanceLocked() {
	moved := false
	for len(t.batches) > 0 && t.batches[0].pending == 0 {
		b := t.batches[0]
		t.batches[0] = nil
		t.batches = t.batches[1:]
		t.inFlight -= b.records
		t.account.give(b.bytes)
		t.completed += int64(b.records)
		t.safe = b.last
		moved = true
	}
	if len(t.batches) > 0 && t.batches[0].upTo.Compare(t.safe) > 0 {
		t.safe = t.batches[0].upTo
		moved = true
	}
	if moved {
		close(t.room)
		t.room = make(chan struct{})
		select {
		case t.advanced <- struct{}{}:
		default:
		}
	}
}

// safePosition returns the position up to which everything is delivered.
func (t *tracker) safePosition() record.Position {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.safe
}

// safeMark returns the safe position and the count of completed records at that position.
func (t *tracker) safeMark() (record.Position, int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.safe, t.completed
}

// progress returns the count of completed records and of records in flight.
func (t *tracker) progress() (completed int64, inFlight int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.completed, t.inFlight
}

// pending returns the batches and records registered but not yet complete.
func (t *tracker) pending() (batches, records int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.batches), t.inFlight
}

// waitDrained blocks until every registered batch is complete, or ctx ends.
func (t *tracker) waitDrained(ctx context.Context) error {
	for {
		t.mu.Lock()
		if len(t.batches) == 0 {
			t.mu.Unlock()
			return nil
		}
		room := t.room
		t.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-room:
		}
	}
}

// withdraw removes the ticket of a batch the pipeline refused, so that waitDrained and the
// in-flight count no longer wait for it. It must be the newest ticket: the shard's reader adds
// and hands on one batch at a time. Acks that still arrive for it are ignored.
func (t *tracker) withdraw(k *ticket) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(t.batches)
	if n == 0 || t.batches[n-1] != k {
		return
	}
	t.batches[n-1] = nil
	t.batches = t.batches[:n-1]
	t.inFlight -= k.records
	t.account.give(k.bytes)
	k.pending = 0
	close(t.room)
	t.room = make(chan struct{})
}
