package consumer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/shardhose/shardhose/checkpoint"
	"github.com/shardhose/shardhose/hooks"
	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/record"
)

// workerEvent tells the coordinator that a shard worker has finished on its own.
type workerEvent struct {
	shardID string
	reason  string // "shard end", "lease lost", "handed off", "stalled", "failed: ..."
}

// now reads the lease's clock; a heldLease made without one (in tests) uses the system clock.
func (h *heldLease) now() time.Time {
	if h.clock == nil {
		return time.Now()
	}
	return h.clock.Now()
}

// trusted reports whether this worker may still act on the lease: it has not been lost or
// released, and a write that extended it was sent less than a lease duration ago by the local
// clock. Past that, other workers may already have seen the lease expire and taken it (a worker
// paused by the OS, a long GC, a partition from DynamoDB), and records read now must not be
// handed on: they would be delivered by two owners, and a key's records could reach the sinks
// out of order. The error wraps errLeaseGone (a *trustEndedError when the window ended); the
// shard stops, and if the lease is in fact still this worker's, the next balance pass takes it
// again and resumes from the checkpoint.
func (h *heldLease) trusted(leaseDuration time.Duration) error {
	_, err := h.trustLeft(leaseDuration)
	return err
}

// trustLeft returns how long the lease stays trusted unless it is extended again, or -1 when
// trust has no time limit (no lease duration, or a lease made without a renewal time).
func (h *heldLease) trustLeft(leaseDuration time.Duration) (time.Duration, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gone {
		return 0, errLeaseGone
	}
	if leaseDuration <= 0 || h.renewedAt.IsZero() {
		return -1, nil
	}
	age := h.now().Sub(h.renewedAt)
	if age < leaseDuration {
		return leaseDuration - age, nil
	}
	e := &trustEndedError{age: age, duration: leaseDuration}
	if !h.failingSince.IsZero() && h.failingSince.Sub(h.renewedAt) < leaseDuration {
		// Writes failed while the lease was still trusted, and none succeeded since.
		e.unreachable, e.lastErr = true, h.writeErr
	}
	return 0, e
}

// trustContext returns a context that ends when the lease stops being trusted, with the reason
// (an error wrapping errLeaseGone) as its cause. Renewals that succeed meanwhile move that moment
// on. stop releases its goroutine.
func (h *heldLease) trustContext(ctx context.Context, clk clock.Clock, leaseDuration time.Duration) (tctx context.Context, stop func()) {
	tctx, cancel := context.WithCancelCause(ctx)
	go func() {
		for {
			left, err := h.trustLeft(leaseDuration)
			if err != nil {
				cancel(err)
				return
			}
			if left < 0 {
				<-tctx.Done()
				return
			}
			t := clk.NewTimer(left)
			select {
			case <-t.C():
			case <-tctx.Done():
				t.Stop()
				return
			}
		}
	}()
	return tctx, func() { cancel(nil) }
}

// trustEndedError says that a lease's trust window ended: no write extended it for a lease
// duration. unreachable tells why: writes failed while the lease was still trusted (the lease
// table could not be reached), or none failed in time (the process was paused, or took too long
// to try).
type trustEndedError struct {
	age, duration time.Duration
	unreachable   bool
	lastErr       error // the last write's error when unreachable
}

func (e *trustEndedError) Error() string {
	if e.unreachable {
		return fmt.Sprintf("the lease table could not be reached to extend the lease for %s, longer than the lease duration %s (last error: %v)",
			e.age.Round(time.Millisecond), e.duration, e.lastErr)
	}
	return fmt.Sprintf("lease last extended %s ago, longer than the lease duration %s; another worker may hold it now",
		e.age.Round(time.Millisecond), e.duration)
}

func (e *trustEndedError) Unwrap() error { return errLeaseGone }

// tableUnreachable reports whether err stops a shard because its lease could not be extended
// for a whole lease duration while the lease table could not be reached.
func tableUnreachable(err error) bool {
	var ended *trustEndedError
	return errors.As(err, &ended) && ended.unreachable
}

// trustCause returns the reason ctx (from trustContext) ended when it ended because the lease
// is no longer trusted, and err otherwise.
func trustCause(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil && errors.Is(cause, errLeaseGone) {
		return cause
	}
	return err
}

// errTableTimeout is the cause of a lease-table call cut short by callWithin.
var errTableTimeout = errors.New("the lease table did not answer in time")

// callWithin runs one call to the lease table, giving up after timeout (none when it is zero).
// Every lease-table call of the lease loop and the shard workers goes through it: a call that
// hangs (DynamoDB frozen, packets dropped) must neither hold up the renewal of other leases nor
// keep the failure from being reported (see callTimeout).
func callWithin(ctx context.Context, clk clock.Clock, timeout time.Duration, call func(context.Context) error) error {
	if timeout <= 0 || clk == nil {
		return call(ctx)
	}
	cctx, stop := clock.WithTimeout(ctx, clk, timeout, errTableTimeout)
	defer stop()
	err := call(cctx)
	if err != nil && errors.Is(context.Cause(cctx), errTableTimeout) && !errors.Is(err, errTableTimeout) {
		// cut short here, or by the caller's own deadline of the same kind (a renewal pass)
		return fmt.Errorf("%w (%s): %w", errTableTimeout, timeout, err)
	}
	return err
}

// tableCall is callWithin with the consumer's clock and timeout.
func (c *Consumer) tableCall(ctx context.Context, call func(context.Context) error) error {
	return callWithin(ctx, c.opts.Clock, c.callTimeout(), call)
}

// callTimeout is how long one lease-table call may take: a renew interval, and at most half of
// what a lease duration leaves after one, so that a renewal sent a renew interval after the last
// one that succeeded has failed, and is logged, before the lease's trust window ends.
func (c *Consumer) callTimeout() time.Duration {
	l := c.opts.Leases
	if l.LeaseDuration <= 0 {
		return l.RenewInterval
	}
	return min(l.RenewInterval, (l.LeaseDuration-l.RenewInterval)/2)
}

func (c *Consumer) handleEvent(ev workerEvent) {
	c.mu.Lock()
	w, ok := c.workers[ev.shardID]
	if ok {
		delete(c.workers, ev.shardID)
	}
	c.mu.Unlock()
	if ok {
		w.abandon(ev.reason)
		c.log.Info("stopped reading shard", "shard", ev.shardID, "reason", ev.reason)
		if ev.reason != "shard end" {
			hooks.Each(c.opts.Hooks, func(h hooks.LeaseChanged) { h.OnLeaseLost(ev.shardID, ev.reason) })
		} else {
			hooks.Each(c.opts.Hooks, func(h hooks.ShardEnded) { h.OnShardEnd(c.streamName, ev.shardID) })
		}
	}
}

// renewAll renews every held lease. A lease that cannot be renewed because someone else holds it
// now stops its shard at once; a lease another worker has claimed is handed over. The whole pass
// takes at most one call timeout (see callTimeout), however many leases there are and whether
// or not the table answers; what it finds is posted to the event queue, which never blocks.
func (c *Consumer) renewAll(ctx context.Context) {
	c.mu.Lock()
	workers := make([]*shardWorker, 0, len(c.workers))
	for _, w := range c.workers {
		workers = append(workers, w)
	}
	c.mu.Unlock()

	passCtx, stop := ctx, func() {}
	if d := c.callTimeout(); d > 0 {
		passCtx, stop = clock.WithTimeout(ctx, c.opts.Clock, d, errTableTimeout)
	}
	defer stop()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-passCtx.Done():
				// The pass is out of time before this renewal could be sent: as failed as one
				// that was sent and timed out.
				if ctx.Err() == nil {
					err := fmt.Errorf("%w: the renewal pass ran out of time before this lease's turn", errTableTimeout)
					w.lease.writeFailed(err)
					c.tableFailed("renew", err, "shard", w.shardID)
				}
				return
			}
			claim, err := w.lease.renew(passCtx, c.opts.Table)
			switch {
			case errors.Is(err, checkpoint.ErrLeaseLost):
				c.tableHealth.Succeeded()
				c.log.Warn("lease lost: another worker holds it now; stopping the shard", "shard", w.shardID)
				c.post(workerEvent{w.shardID, "lease lost"})
			case errors.Is(err, errLeaseGone):
				// released or lost already; the worker reports itself.
			case err != nil:
				if ctx.Err() == nil {
					c.tableFailed("renew", err, "shard", w.shardID)
				}
			default:
				c.tableHealth.Succeeded()
				if claim != "" && claim != c.opts.WorkerID && w.startHandOff() {
					c.log.Info("lease claimed by another worker; handing it over", "shard", w.shardID, "claimant", claim)
					go c.handOff(ctx, w)
				}
			}
		}()
	}
	wg.Wait()
	c.checkStalls(ctx, workers)
}

// tableFailed reports a failed lease table call: to the table's outage reporter and to the
// hooks (hooks.LeaseTableFailed), with operation: renew, checkpoint, take, create, list.
func (c *Consumer) tableFailed(operation string, err error, attrs ...any) {
	c.tableHealth.Failed(err, append([]any{"operation", operation}, attrs...)...)
	hooks.Each(c.opts.Hooks, func(h hooks.LeaseTableFailed) { h.OnLeaseTableFailed(operation, err) })
}

// stallWatch remembers, per shard worker, since when its shard has made no progress.
type stallWatch struct {
	marks map[*shardWorker]progressMark
}

type progressMark struct {
	safe  record.Position
	since time.Time // local clock
}

// checkStalls finds the shards that hold records read but not delivered while their safe
// position has not moved for Options.StallTimeout: a sink or processor that never acknowledges,
// a pipeline blocked for ever. Each is reported and restarted (restartStalled). A shard with
// nothing in flight is idle, not stalled, however long it waits for new records.
func (c *Consumer) checkStalls(ctx context.Context, workers []*shardWorker) {
	limit := c.opts.StallTimeout
	if limit <= 0 {
		return
	}
	now := c.opts.Clock.Now()
	marks := make(map[*shardWorker]progressMark, len(workers))
	for _, w := range workers {
		safe := w.tracker.safePosition()
		_, inFlight := w.tracker.pending()
		m, ok := c.stalls.marks[w]
		if !ok || inFlight == 0 || safe != m.safe {
			marks[w] = progressMark{safe: safe, since: now}
			continue
		}
		marks[w] = m
		if idle := now.Sub(m.since); idle >= limit && w.startHandOff() {
			c.log.Error("shard stalled: records read are not being delivered; releasing its lease to read it again from the checkpoint",
				"shard", w.shardID, "stalled_for", idle.String(), "undelivered", inFlight, "checkpoint", safe.String(), "stall_timeout", limit.String())
			go c.restartStalled(ctx, w)
		}
	}
	c.stalls.marks = marks
}

// restartStalled stops a stalled shard: it stops the reader, gives what was read a renewal
// interval to be delivered, writes the checkpoint it has (records after it are read again),
// and releases the lease. The next balance pass takes the lease again, here or on another
// worker, with a new reader and a new pipeline.
func (c *Consumer) restartStalled(ctx context.Context, w *shardWorker) {
	w.stopReading()
	waitCtx, cancel := context.WithTimeout(ctx, c.opts.Leases.RenewInterval)
	defer cancel()
	w.waitReader(waitCtx)
	w.finish(waitCtx, ctx, "stalled")
	c.post(workerEvent{w.shardID, "stalled"})
}

// handOff gives a shard to the worker that claimed it: stop reading, deliver what was read, write
// the checkpoint and release the lease so the claimant can take it at once.
func (c *Consumer) handOff(ctx context.Context, w *shardWorker) {
	w.stopReading()
	waitCtx, cancel := context.WithTimeout(ctx, c.opts.Leases.LeaseDuration)
	defer cancel()
	w.waitReader(waitCtx)
	c.deliverAll(waitCtx, []*shardWorker{w})
	w.finish(waitCtx, ctx, "handed off")
	c.post(workerEvent{w.shardID, "handed off"})
}

// post queues an event for the Run goroutine. It never blocks: the goroutines that post include
// those the Run goroutine itself waits for (renewAll's), so a bounded queue could wedge it.
func (c *Consumer) post(ev workerEvent) {
	c.eventsMu.Lock()
	c.queued = append(c.queued, ev)
	c.eventsMu.Unlock()
	select {
	case c.eventReady <- struct{}{}:
	default: // a wake-up is pending already; it takes this event too
	}
}

// takeEvents returns the events posted since the last call, oldest first.
func (c *Consumer) takeEvents() []workerEvent {
	c.eventsMu.Lock()
	defer c.eventsMu.Unlock()
	evs := c.queued
	c.queued = nil
	return evs
}

// syncShards lists the stream's shards and makes sure each has a row in the lease table, and
// deletes the rows of finished parents the stream no longer lists.
func (c *Consumer) syncShards(ctx context.Context) error {
	type shardInfo struct {
		id      string
		parents []string
	}
	var shards []shardInfo
	var token *string
	for {
		in := &kinesis.ListShardsInput{}
		if token != nil {
			in.NextToken = token
		} else if c.streamName != "" {
			in.StreamName = aws.String(c.streamName)
		} else {
			in.StreamARN = aws.String(c.streamARN)
		}
		out, err := c.opts.Kinesis.ListShards(ctx, in)
		if err != nil {
			if ctx.Err() == nil {
				c.streamHealth.Failed(err, "operation", "ListShards")
			}
			return err
		}
		c.streamHealth.Succeeded()
		for _, s := range out.Shards {
			si := shardInfo{id: aws.ToString(s.ShardId)}
			if p := aws.ToString(s.ParentShardId); p != "" {
				si.parents = append(si.parents, p)
			}
			if p := aws.ToString(s.AdjacentParentShardId); p != "" {
				si.parents = append(si.parents, p)
			}
			shards = append(shards, si)
		}
		if out.NextToken == nil {
			break
		}
		token = out.NextToken
	}
	seen := make(map[string]bool, len(shards))
	for _, s := range shards {
		seen[s.id] = true
	}
	// Parents come before their children in ListShards; create rows in that order so a child's
	// row never exists without its parent's while the parent is still in the stream. A shard
	// whose row the last read of the table showed is skipped: a conditional write that finds the
	// row costs a paid write request all the same, once per shard per sync.
	c.mu.Lock()
	inTable := c.inTable
	c.mu.Unlock()
	for _, s := range shards {
		if inTable[s.id] {
			continue
		}
		err := c.tableCall(ctx, func(ctx context.Context) error { return c.opts.Table.CreateIfAbsent(ctx, s.id, s.parents) })
		if err != nil {
			if ctx.Err() == nil {
				c.tableFailed("create", err, "shard", s.id)
			}
			return err
		}
	}
	c.mu.Lock()
	c.inStream = seen
	c.mu.Unlock()
	return nil
}

// balance reads the lease table and takes leases until this worker holds its share: first free
// or expired leases, then by claiming leases from the most loaded workers, who hand them over at
// their next renewal. Finished parents that the stream no longer lists are deleted.
func (c *Consumer) balance(ctx context.Context) {
	var leases []checkpoint.Lease
	err := c.tableCall(ctx, func(ctx context.Context) error {
		var err error
		leases, err = c.opts.Table.List(ctx)
		return err
	})
	if err != nil {
		if ctx.Err() == nil {
			c.tableFailed("list", err)
		}
		return
	}
	c.tableHealth.Succeeded()
	c.expiry.Observe(leases)
	c.mu.Lock()
	inStream := c.inStream
	held := len(c.workers)
	holding := make(map[string]bool, held)
	for id := range c.workers {
		holding[id] = true
	}
	c.mu.Unlock()
	if len(inStream) == 0 {
		return // the shard list has not been read yet: parents cannot be told apart from strangers
	}

	byID := make(map[string]checkpoint.Lease, len(leases))
	inTable := make(map[string]bool, len(leases))
	for _, l := range leases {
		byID[l.ShardID] = l
		inTable[l.ShardID] = true
	}
	c.mu.Lock()
	c.inTable = inTable
	c.mu.Unlock()
	me := c.opts.WorkerID
	var eligible []checkpoint.Lease
	for _, l := range leases {
		if l.ShardEnd {
			if gone(l.ShardID, leases, inStream) {
				if err := c.tableCall(ctx, func(ctx context.Context) error { return c.opts.Table.Delete(ctx, l) }); err == nil {
					c.log.Info("deleted the lease of a finished shard the stream no longer lists", "shard", l.ShardID)
				}
			}
			continue
		}
		if !inStream[l.ShardID] {
			// Either the shard left the stream before it was read to its end (its records
			// expired: nothing is left to read), or it is newer than this worker's shard list
			// (the next shard sync adds it). Neither can be read now.
			continue
		}
		if parentsDone(l, byID, inStream) {
			eligible = append(eligible, l)
		}
	}
	if len(eligible) == 0 {
		return
	}

	// Live workers and their loads: owners of leases that have not expired, and this one. A
	// lease being handed over (claimed, or released for its claimant) counts for the claimant,
	// so that two workers short of leases do not both claim from one owner to fill one gap.
	load := map[string]int{me: held}
	for _, l := range eligible {
		switch {
		case l.Owner == me:
		case l.Owner != "" && !c.expiry.Expired(l):
			if l.ClaimRequest == "" {
				load[l.Owner]++
				break
			}
			load[l.ClaimRequest]++
			if _, ok := load[l.Owner]; !ok {
				load[l.Owner] = 0 // alive, though all it holds so far is being handed over
			}
		case l.Owner == "" && l.ClaimRequest != "" && !c.expiry.ClaimAbandoned(l):
			load[l.ClaimRequest]++
		}
	}
	target := (len(eligible) + len(load) - 1) / len(load)
	if maxL := c.opts.Leases.MaxLeasesPerWorker; maxL > 0 && target > maxL {
		target = maxL
	}
	need := target - held
	if need <= 0 {
		return
	}

	// Free leases: no owner, an expired owner, or this worker's own id from an earlier life.
	var free, claimedByMe []checkpoint.Lease
	for _, l := range eligible {
		if holding[l.ShardID] {
			continue
		}
		isFree := l.Owner == "" || l.Owner == me || c.expiry.Expired(l)
		if !isFree {
			if l.ClaimRequest == me {
				need-- // its owner is handing it over
			}
			continue
		}
		switch {
		case l.ClaimRequest == me:
			claimedByMe = append(claimedByMe, l)
		case l.ClaimRequest != "" && !c.expiry.Expired(l) && !c.expiry.ClaimAbandoned(l):
			// Released for another worker that claimed it; leave it to them unless they never
			// come (ClaimAbandoned: a lease duration without the claimant taking it).
		default:
			free = append(free, l)
		}
	}
	rand.Shuffle(len(free), func(i, j int) { free[i], free[j] = free[j], free[i] })
	candidates := append(claimedByMe, free...)
	for _, l := range candidates {
		if need <= 0 && l.ClaimRequest != me {
			break
		}
		takenOver := l.Owner != "" && l.Owner != me && c.expiry.Expired(l)
		var taken checkpoint.Lease
		err := c.tableCall(ctx, func(ctx context.Context) error {
			var err error
			taken, err = c.opts.Table.Take(ctx, l)
			return err
		})
		if err != nil {
			if !errors.Is(err, checkpoint.ErrLeaseLost) && ctx.Err() == nil {
				c.tableFailed("take", err, "shard", l.ShardID)
			}
			if errors.Is(err, errTableTimeout) {
				return // the table does not answer: try again next pass, not once per lease
			}
			continue
		}
		if takenOver {
			hooks.Each(c.opts.Hooks, func(h hooks.LeaseTakenOver) { h.OnLeaseTakenOver(l.ShardID, l.Owner) })
		}
		c.startWorker(ctx, taken, byID)
		need--
	}
	if need <= 0 || c.opts.NoClaims {
		return
	}

	// Still short: claim from the most loaded workers, one lease each time from whoever has most.
	owned := map[string][]checkpoint.Lease{}
	for _, l := range eligible {
		if l.Owner != "" && l.Owner != me && !c.expiry.Expired(l) && l.ClaimRequest == "" {
			owned[l.Owner] = append(owned[l.Owner], l)
		}
	}
	for need > 0 {
		owners := make([]string, 0, len(owned))
		for o := range owned {
			owners = append(owners, o)
		}
		sort.Slice(owners, func(i, j int) bool { return load[owners[i]] > load[owners[j]] })
		if len(owners) == 0 || load[owners[0]] <= target || len(owned[owners[0]]) == 0 {
			return
		}
		victim := owners[0]
		l := owned[victim][0]
		owned[victim] = owned[victim][1:]
		load[victim]--
		if err := c.tableCall(ctx, func(ctx context.Context) error { return c.opts.Table.Claim(ctx, l) }); err != nil {
			if !errors.Is(err, checkpoint.ErrLeaseLost) && ctx.Err() == nil {
				hooks.Each(c.opts.Hooks, func(h hooks.LeaseTableFailed) { h.OnLeaseTableFailed("claim", err) })
			}
			if errors.Is(err, errTableTimeout) {
				return
			}
			continue
		}
		c.log.Info("claimed a lease from a busier worker", "shard", l.ShardID, "owner", victim)
		hooks.Each(c.opts.Hooks, func(h hooks.LeaseClaimed) { h.OnLeaseClaimed(l.ShardID, victim) })
		need--
	}
}

// parentsDone reports whether every parent of l has been read to its end: its row says
// SHARD_END, or it has left the stream (its records expired, so nothing of it is left to read,
// whether or not its row ever reached SHARD_END). l must be in inStream: only a shard list that
// holds the child is recent enough to tell that a parent has left, since Kinesis lists a parent
// for as long as it holds records, and a parent is older than its children.
func parentsDone(l checkpoint.Lease, byID map[string]checkpoint.Lease, inStream map[string]bool) bool {
	for _, p := range l.ParentShardIDs {
		if row, ok := byID[p]; ok && row.ShardEnd {
			continue
		}
		if inStream[p] || !inStream[l.ShardID] {
			return false
		}
	}
	return true
}

// gone reports whether the finished shard id has left the stream, so its row can be deleted:
// the shard list does not hold it but holds one of its children. A list that holds neither may
// be older than the shard itself (a child made and read to its end between two shard syncs),
// and deleting that row would have the shard read again from its start.
func gone(id string, leases []checkpoint.Lease, inStream map[string]bool) bool {
	if inStream[id] {
		return false
	}
	for _, l := range leases {
		if inStream[l.ShardID] && slices.Contains(l.ParentShardIDs, id) {
			return true
		}
	}
	return false
}
