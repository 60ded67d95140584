package consumer

import (
	"context"
	"errors"
	"math/rand/v2"
	"sort"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/shardhose/shardhose/checkpoint"
	"github.com/shardhose/shardhose/hooks"
)

// workerEvent tells the coordinator that a shard worker has finished on its own.
type workerEvent struct {
	shardID string
	reason  string // "shard end", "lease lost", "handed off", "failed"
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
		}
	}
}

// renewAll renews every held lease. A lease that cannot be renewed because someone else holds it
// now stops its shard at once; a lease another worker has claimed is handed over.
func (c *Consumer) renewAll(ctx context.Context) {
	c.mu.Lock()
	workers := make([]*shardWorker, 0, len(c.workers))
	for _, w := range c.workers {
		workers = append(workers, w)
	}
	c.mu.Unlock()

	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, w := range workers {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			claim, err := w.lease.renew(ctx, c.opts.Table)
			switch {
			case errors.Is(err, checkpoint.ErrLeaseLost):
				c.log.Warn("lease lost: another worker holds it now; stopping the shard", "shard", w.shardID)
				c.post(workerEvent{w.shardID, "lease lost"})
			case errors.Is(err, errLeaseGone):
				// released or lost already; the worker reports itself.
			case err != nil:
				c.log.Warn("lease renewal failed; will retry", "shard", w.shardID, "error", err)
			case claim != "" && claim != c.opts.WorkerID:
				if w.startHandOff() {
					c.log.Info("lease claimed by another worker; handing it over", "shard", w.shardID, "claimant", claim)
					go c.handOff(ctx, w)
				}
			}
		}()
	}
	wg.Wait()
}

// handOff gives a shard to the worker that claimed it: stop reading, deliver what was read, write
// the checkpoint and release the lease so the claimant can take it at once.
func (c *Consumer) handOff(ctx context.Context, w *shardWorker) {
	w.stopReading()
	waitCtx, cancel := context.WithTimeout(ctx, c.opts.Leases.LeaseDuration)
	defer cancel()
	w.waitReader(waitCtx)
	c.flushSinks(waitCtx)
	w.finish(waitCtx, ctx, "handed off")
	c.post(workerEvent{w.shardID, "handed off"})
}

func (c *Consumer) post(ev workerEvent) {
	select {
	case c.events <- ev:
	case <-c.runDone:
	}
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
			return err
		}
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
	// row never exists without its parent's while the parent is still in the stream.
	for _, s := range shards {
		if err := c.opts.Table.CreateIfAbsent(ctx, s.id, s.parents); err != nil {
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
	leases, err := c.opts.Table.List(ctx)
	if err != nil {
		c.log.Warn("reading the lease table failed; will retry", "error", err)
		return
	}
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
	for _, l := range leases {
		byID[l.ShardID] = l
	}
	me := c.opts.WorkerID
	var eligible []checkpoint.Lease
	for _, l := range leases {
		if l.ShardEnd {
			if !inStream[l.ShardID] {
				if err := c.opts.Table.Delete(ctx, l); err == nil {
					c.log.Info("deleted the lease of a finished shard the stream no longer lists", "shard", l.ShardID)
				}
			}
			continue
		}
		if parentsDone(l, byID, inStream) {
			eligible = append(eligible, l)
		}
	}
	if len(eligible) == 0 {
		return
	}

	// Live workers: owners of leases that have not expired, and this one.
	load := map[string]int{me: held}
	for _, l := range eligible {
		if l.Owner != "" && l.Owner != me && !c.expiry.Expired(l) {
			load[l.Owner]++
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
		case l.ClaimRequest != "" && !c.expiry.Expired(l):
			// Released for another worker that claimed it; leave it to them unless they never come.
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
		taken, err := c.opts.Table.Take(ctx, l)
		if err != nil {
			if !errors.Is(err, checkpoint.ErrLeaseLost) {
				c.log.Warn("taking a lease failed", "shard", l.ShardID, "error", err)
			}
			continue
		}
		c.startWorker(ctx, taken, byID)
		need--
	}
	if need <= 0 {
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
		if err := c.opts.Table.Claim(ctx, l); err != nil {
			continue
		}
		c.log.Info("claimed a lease from a busier worker", "shard", l.ShardID, "owner", victim)
		need--
	}
}

// parentsDone reports whether every parent of l has been read to its end. A parent with no row
// counts as done only when the stream no longer lists it (its data has expired).
func parentsDone(l checkpoint.Lease, byID map[string]checkpoint.Lease, inStream map[string]bool) bool {
	for _, p := range l.ParentShardIDs {
		row, ok := byID[p]
		if ok {
			if !row.ShardEnd {
				return false
			}
			continue
		}
		if inStream[p] {
			return false
		}
	}
	return true
}
