package s3

// Exactly-once delivery (delivery: exactly_once). docs/design.md ("Exactly-once delivery to S3")
// gives the argument step by step; in short:
//
//   - each shard the consumer leases gets a run (chain) of objects of its own, written one at
//     a time, in shard order, each holding the records that follow the previous object's last;
//   - an object's key is made of the shard and the position it starts after (the previous
//     object's last record, or the run's starting position), never of anything random, and it
//     is written with If-None-Match: * so that it is created once and never overwritten;
//   - its metadata names its first and last record; a write refused because the key exists
//     reads the last record there and carries on after it, so the loser of a race (or the next
//     owner after a crash) skips what the winner holds and writes the rest after it;
//   - the run's position (the last record of its last object) goes into the lease row with every
//     checkpoint, and the next owner of the shard starts its run from there.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/hooks"
	"github.com/shardhose/shardhose/internal/retry"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks"
	"github.com/shardhose/shardhose/sinks/backup"
)

// HeadObjectAPI reads an object's metadata; *awss3.Client implements it. An exactly-once sink
// needs it to learn what an object it could not create holds.
type HeadObjectAPI interface {
	HeadObject(ctx context.Context, in *awss3.HeadObjectInput, optFns ...func(*awss3.Options)) (*awss3.HeadObjectOutput, error)
}

// User metadata of an exactly-once object (x-amz-meta-<name>): the shard, the position the
// object starts after (its key's), and its first and last records and their count.
const (
	MetaShard   = "shardhose-shard"
	MetaAfter   = "shardhose-after"
	MetaFirst   = "shardhose-first"
	MetaLast    = "shardhose-last"
	MetaRecords = "shardhose-records"
)

var (
	// errRunEnded: the shard's lease is gone, so its run writes nothing more.
	errRunEnded = errors.New("the shard's lease is no longer held by this worker")
	// errLeaseUnconfirmed: the lease was not extended for a lease duration; wait.
	errLeaseUnconfirmed = errors.New("the shard's lease has not been confirmed for a lease duration; waiting before writing")
)

// startID names the position before a shard's first record in object keys.
const startID = "start"

// chain is one run of a shard: the objects written for it while this worker holds its lease.
type chain struct {
	shardID string
	lease   sinks.ShardLease
	// tail is closed when the newest sealed object of the run is finished; nil before the
	// first. Guarded by Sink.mu.
	tail <-chan struct{}

	// cut is the cut being written, with dynamic partitioning (exactly_partition.go).
	cut *cutState

	mu sync.Mutex
	// at is the position up to which the shard's records are in written objects: the run's
	// start, then the last record of each object written or found.
	at record.Position
}

func (c *chain) position() record.Position {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.at
}

// advance moves the position forward to p (never back).
func (c *chain) advance(p record.Position) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p.Compare(c.at) > 0 {
		c.at = p
	}
}

// checkExactlyOnce validates delivery and returns the client's HeadObjectAPI when it is
// exactly_once.
func checkExactlyOnce(cfg config.S3Sink, client PutObjectAPI, problems *[]error) (HeadObjectAPI, bool) {
	switch cfg.Delivery {
	case "", config.DeliveryAtLeastOnce:
		return nil, false
	case config.DeliveryExactlyOnce:
	default:
		*problems = append(*problems, fmt.Errorf("delivery %q: must be %s or %s", cfg.Delivery, config.DeliveryAtLeastOnce, config.DeliveryExactlyOnce))
		return nil, false
	}
	heads, ok := client.(HeadObjectAPI)
	if !ok && client != nil {
		*problems = append(*problems, errors.New("delivery exactly_once: the S3 client cannot read object metadata (HeadObject)"))
	}
	return heads, true
}

// ExactlyOnce reports whether the sink was configured with delivery: exactly_once.
func (s *Sink) ExactlyOnce() bool { return s.exactly }

// OpenShard starts a new run of shardID from position from (see sinks.ExactlyOnce): its first
// object is named after from and holds the shard's records after it. An earlier run of the shard
// in this sink ends when its own lease reports it lost; records it still buffers are not written.
// Without exactly_once it does nothing.
func (s *Sink) OpenShard(shardID string, from record.Position, lease sinks.ShardLease) {
	if !s.exactly {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.chains[shardID] = &chain{shardID: shardID, lease: lease, at: from}
}

// Delivered returns the position up to which the records of shardID's current run are in
// written objects; false when the shard has no run (or the sink is not exactly_once).
func (s *Sink) Delivered(shardID string) (record.Position, bool) {
	s.mu.Lock()
	c := s.chains[shardID]
	s.mu.Unlock()
	if c == nil {
		return record.Position{}, false
	}
	return c.position(), true
}

var _ sinks.ExactlyOnce = (*Sink)(nil)

// awaitPrevious waits until the previous object of o's run is finished, so that o is named
// after the records the run holds by then. False when the sink stopped first (o is abandoned).
func (s *Sink) awaitPrevious(ctx context.Context, o *object) bool {
	if o.prev == nil {
		return true
	}
	select {
	case <-o.prev:
		return true
	case <-ctx.Done():
		s.abandon(o, ctx.Err())
		return false
	}
}

// giveUp drops an object of a run whose lease is gone: it is not written and its Writes are
// never acknowledged (the lease's next owner reads its records again), but it no longer holds an
// upload slot, and Flushes waiting for it go on.
func (s *Sink) giveUp(o *object) {
	s.log.Warn("the shard's lease is no longer held: object not written; the lease's next owner delivers its records",
		"shard", o.bk.chain.shardID, "records", o.records)
	s.mu.Lock()
	o.acks, o.recs, o.errs = nil, nil, nil
	delete(s.pending, o)
	flushed := settle(o.flushes)
	o.flushes = nil
	s.releaseLocked(o)
	s.mu.Unlock()
	for _, fn := range flushed {
		fn()
	}
}

func comparePositions(a, b *record.Record) int { return a.Position().Compare(b.Position()) }

// sortedRecords returns o's records (and their partitions) in shard order.
func sortedRecords(o *object) ([]*record.Record, []*routed) {
	recs, routes := o.recs, o.routes
	if slices.IsSortedFunc(recs, comparePositions) {
		return recs, routes
	}
	idx := make([]int, len(recs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return comparePositions(recs[a], recs[b]) })
	sorted := make([]*record.Record, len(recs))
	var sortedRoutes []*routed
	if routes != nil {
		sortedRoutes = make([]*routed, len(recs))
	}
	for to, from := range idx {
		sorted[to] = recs[from]
		if routes != nil {
			sortedRoutes[to] = routes[from]
		}
	}
	return sorted, sortedRoutes
}

// after returns the index of the first of recs (in shard order) after position p.
func after(recs []*record.Record, p record.Position) int {
	i, _ := slices.BinarySearchFunc(recs, p, func(r *record.Record, p record.Position) int {
		if r.Position().Compare(p) <= 0 {
			return -1
		}
		return 1
	})
	return i
}

// deliverChain writes the records of o that its run does not hold yet, as one object named after
// the run's position, created only if absent. When an object is there already (written by an
// earlier owner of the shard before a crash, or by a worker racing this one), the run moves past
// that object's last record and writes the rest of o after it, and so on until every record of o
// is in an object. It returns errRunEnded when the lease is gone, and otherwise only when ctx
// ends. With dynamic partitioning it writes cuts instead (deliverCuts).
func (s *Sink) deliverChain(ctx context.Context, o *object) error {
	recs, routes := sortedRecords(o)
	if s.parts != nil {
		return s.deliverCuts(ctx, o.bk.chain, recs, routes)
	}
	c := o.bk.chain
	for {
		pos := c.position()
		recs = recs[after(recs, pos):]
		if len(recs) == 0 {
			return nil // every record is in objects written before
		}
		through := recs[len(recs)-1].Position()
		found, err := s.putRunObject(ctx, c, runObject{after: pos, recs: recs, through: through})
		if err != nil {
			return err
		}
		if found == nil {
			c.advance(through)
			return nil
		}
		c.advance(*found)
		if c.lease() != sinks.LeaseHeld {
			// A zombie: another worker wrote the run's next object. It stops here.
			return errRunEnded
		}
	}
}

// runObject is one object of a run: records of its shard (of one partition of it, with dynamic
// partitioning), all after the position after, and the object holds every one of the shard's
// (partition's) records in (after, through].
type runObject struct {
	after   record.Position
	recs    []*record.Record
	keys    []string // partition key values, for the prefix; nil without dynamic partitioning
	through record.Position
	meta    map[string]string // more metadata
}

// putRunObject encodes ro's records, writes those the encoder rejects to the error output, and
// creates the object named after ro.after, retrying until it is created or found to exist.
// found is nil when this call created it, else the position through which the existing object
// holds the records.
func (s *Sink) putRunObject(ctx context.Context, c *chain, ro runObject) (found *record.Position, err error) {
	buf := getBody()
	defer putBody(buf)
	recs := ro.recs
	rejected, err := s.format.enc.encode(buf, recs)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errEncode, err)
	}
	if len(rejected) > 0 {
		now := s.clock.Now()
		errs := make([]backup.ErrorRecord, len(rejected))
		for i, rj := range rejected {
			errs[i] = errorRecord(recs[rj.index], &failure{outputType: ErrorOutputFormatConversionFailed, code: ErrorCodeMalformedData, message: rj.reason}, now)
		}
		if err := s.errs.WriteErrors(ctx, ErrorOutputFormatConversionFailed+"/", errs); err != nil {
			return nil, fmt.Errorf("write %d records that do not fit the schema to the error output: %w", len(errs), err)
		}
	}
	first := recs[0].Position()
	records := len(recs) - len(rejected)
	key := s.keys.keyWithID(recs[0].ApproximateArrivalTimestamp, ro.keys, "", runObjectID(c.shardID, ro.after))
	meta := map[string]string{
		MetaShard:   c.shardID,
		MetaAfter:   positionID(ro.after),
		MetaFirst:   first.String(),
		MetaLast:    ro.through.String(),
		MetaRecords: strconv.Itoa(records),
	}
	maps.Copy(meta, ro.meta)
	body := buf.Bytes()
	found, out, err := s.create(ctx, c, key, body, meta, ro.after, records)
	if err != nil || found != nil {
		return found, err
	}
	s.log.Debug("s3 object written", "key", key, "shard", c.shardID, "first", first.String(), "last", ro.through.String(), "records", records, "bytes", len(body), "attempts", out.Attempts)
	hooks.Each(s.hooks, func(h hooks.Delivered) { h.OnDelivered(s.name, records, len(body), out.Ended.Sub(out.Started)) })
	return nil, nil
}

// create creates key (If-None-Match: *) with body and meta, for the run c at position after,
// asking for the lease before each attempt and retrying failures until it is created or found
// to exist. found is nil when this call created it; else it is the position through which the
// existing object holds the records (its MetaLast), which must be after after.
func (s *Sink) create(ctx context.Context, c *chain, key string, body []byte, meta map[string]string, after record.Position, records int) (found *record.Position, out retry.Outcome, err error) {
	attempt := func(ctx context.Context, _ int) error {
		switch c.lease() {
		case sinks.LeaseLost:
			return retry.Permanent(errRunEnded)
		case sinks.LeaseUncertain:
			return errLeaseUnconfirmed
		}
		err := s.putIfAbsent(ctx, key, body, meta)
		if err == nil || !isPreconditionFailed(err) {
			return err
		}
		holds, err := s.lastOf(ctx, key)
		if err != nil {
			return fmt.Errorf("put object %s: it exists already; reading what it holds: %w", key, err)
		}
		if holds.Compare(after) <= 0 {
			return fmt.Errorf("put object %s: it exists already, and its metadata says it ends at %s, not after %s: it was not written by this sink's exactly-once delivery", key, holds, positionID(after))
		}
		found = &holds
		return nil
	}
	failed := func(attempt int, err error, wait time.Duration) {
		if errors.Is(err, errLeaseUnconfirmed) {
			s.log.Info("waiting for the shard's lease to be confirmed before writing", "shard", c.shardID, "key", key, "retry_in", wait)
			return
		}
		s.log.Warn("s3 put object failed; retrying", "key", key, "attempt", attempt, "records", records, "bytes", len(body), "retry_in", wait, "error", err)
		hooks.Each(s.hooks, func(h hooks.DeliveryFailed) { h.OnDeliveryFailed(s.name, records, err) })
	}
	out, err = retry.Do(ctx, s.clock, s.policy, attempt, failed)
	if err != nil {
		return nil, out, err
	}
	if found != nil {
		s.log.Info("object exists already (written by an earlier owner of the shard, or one racing this worker); continuing after its last record",
			"key", key, "shard", c.shardID, "holds_up_to", found.String())
	}
	return found, out, nil
}

// putIfAbsent creates key with body and meta unless an object is there (If-None-Match: *).
func (s *Sink) putIfAbsent(ctx context.Context, key string, body []byte, meta map[string]string) error {
	err := s.putOne(ctx, &awss3.PutObjectInput{Key: aws.String(key), Metadata: meta, IfNoneMatch: aws.String("*")}, body)
	if err != nil {
		return fmt.Errorf("put object %s if absent: %w", key, err)
	}
	return nil
}

// lastOf reads the last position an exactly-once object holds from its metadata.
func (s *Sink) lastOf(ctx context.Context, key string) (record.Position, error) {
	out, err := s.heads.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		return record.Position{}, fmt.Errorf("head object %s: %w", key, err)
	}
	for k, v := range out.Metadata {
		if strings.EqualFold(k, MetaLast) {
			p, err := parseRunPosition(v)
			if err != nil {
				return record.Position{}, fmt.Errorf("object %s: metadata %s: %w", key, MetaLast, err)
			}
			return p, nil
		}
	}
	return record.Position{}, fmt.Errorf("object %s has no %s metadata", key, MetaLast)
}

// isPreconditionFailed reports S3's 412 answer to a conditional write whose key exists.
func isPreconditionFailed(err error) bool {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode() == "PreconditionFailed" {
		return true
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == 412
}

// runObjectID is the part of an exactly-once object's name in place of Firehose's random one:
// <shard id>-<position the object starts after>, "start" before the shard's first record.
func runObjectID(shardID string, after record.Position) string {
	return shardID + "-" + positionID(after)
}

func positionID(p record.Position) string {
	if p.IsZero() {
		return startID
	}
	return p.String()
}

// parseRunPosition reads a position as positionID writes it.
func parseRunPosition(s string) (record.Position, error) {
	if s == startID {
		return record.Position{}, nil
	}
	return record.ParsePosition(s)
}
