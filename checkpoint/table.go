package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/record"
)

var (
	// ErrLeaseLost means a fenced write found the row changed: another worker owns the lease, the
	// counter moved past the one the caller held, or the row is gone. The caller must stop work on
	// the shard at once and must not retry the write with the same Lease.
	ErrLeaseLost = errors.New("checkpoint: lease lost")
	// ErrTableNotFound means the lease table does not exist (outside Ensure, which creates it).
	ErrTableNotFound = errors.New("checkpoint: lease table not found")
	// ErrAccessDenied means the credentials may not use the lease table. Retrying will not help.
	ErrAccessDenied = errors.New("checkpoint: access to the lease table denied")
	// ErrCheckpointRefused means Checkpoint was asked to move backwards, past SHARD_END, or to an
	// invalid position. Nothing was written; it is a bug in the caller, not a race.
	ErrCheckpointRefused = errors.New("checkpoint: checkpoint refused")
	// ErrShardNotEnded means Delete found the row's checkpoint is not SHARD_END; nothing was deleted.
	ErrShardNotEnded = errors.New("checkpoint: shard has not reached SHARD_END")
)

// DefaultLeaseDuration is the lease duration when Options.LeaseDuration is not set: the failover
// time of vmware-go-kcl-v2 and of the Java KCL.
const DefaultLeaseDuration = 10 * time.Second

// ensureMaxWait bounds how long Ensure waits for a table to become ACTIVE when ctx has no earlier
// deadline.
const ensureMaxWait = 5 * time.Minute

// DynamoDBAPI is the part of *dynamodb.Client the lease table uses.
type DynamoDBAPI interface {
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
}

var _ DynamoDBAPI = (*dynamodb.Client)(nil)

// Options tunes a Table. The zero value is usable.
type Options struct {
	// LeaseDuration is how long a lease lasts without a renewal. It sets the informational
	// LeaseTimeout attribute; expiry itself is decided by an ExpiryTracker built with the same
	// duration. Zero or negative means DefaultLeaseDuration.
	LeaseDuration time.Duration
	// Clock is the time source; nil means the system clock.
	Clock clock.Clock
	// Logger receives lease changes at debug level and table creation at info; nil means slog.Default().
	Logger *slog.Logger
	// NoCreate makes Ensure report a missing table (ErrTableNotFound) instead of creating it.
	NoCreate bool
}

// Table is a worker's handle on the lease table.
//
// Every write that changes ownership or the checkpoint (Take, Renew, Checkpoint, Release) is
// conditional on the counter and owner of the Lease passed in, bumps the counter, and returns the
// row as written; a failed condition returns an error wrapping ErrLeaseLost. Claim, CreateIfAbsent
// and Delete are conditional too but leave the counter alone. Reads are strongly consistent.
//
// A Table is safe for concurrent use. Callers serialise the writes for one lease, so that the
// Lease they pass always carries the counter of their own latest write; two concurrent writes on
// one lease from the same worker would fence each other out.
//
// The SDK retries a request whose response was lost; when the lost attempt had been applied, the
// retry fails its condition against our own write. After a failed condition the Table therefore
// reads the row back and reports success when it shows exactly the write that was asked for, as
// the Java KCL does. One consequence: repeating a write with the same Lease, while nobody else has
// written the row, returns the row as the first write left it instead of ErrLeaseLost.
type Table struct {
	client        DynamoDBAPI
	name          string
	workerID      string
	leaseDuration time.Duration
	clock         clock.Clock
	log           *slog.Logger
	noCreate      bool
	endpoint      string // for error messages
}

// NewTable returns a handle on the lease table tableName for worker workerID. It does no I/O; call
// Ensure to check or create the table. A Table with an empty workerID can read and Delete but
// every ownership write returns an error.
func NewTable(client DynamoDBAPI, tableName, workerID string, opts Options) *Table {
	t := &Table{
		client:        client,
		name:          tableName,
		workerID:      workerID,
		leaseDuration: opts.LeaseDuration,
		clock:         opts.Clock,
		log:           opts.Logger,
		noCreate:      opts.NoCreate,
	}
	if t.leaseDuration <= 0 {
		t.leaseDuration = DefaultLeaseDuration
	}
	if t.clock == nil {
		t.clock = clock.Real()
	}
	if t.log == nil {
		t.log = slog.Default()
	}
	t.log = t.log.With("table", tableName)
	t.endpoint = endpointOf(client)
	return t
}

// Name returns the table name.
func (t *Table) Name() string { return t.name }

// WorkerID returns the worker id this Table writes as owner.
func (t *Table) WorkerID() string { return t.workerID }

// endpointOf names where the client sends requests, for error messages.
func endpointOf(c DynamoDBAPI) string {
	o, ok := c.(interface{ Options() dynamodb.Options })
	if !ok {
		return "the configured DynamoDB endpoint"
	}
	opts := o.Options()
	if opts.BaseEndpoint != nil && *opts.BaseEndpoint != "" {
		return *opts.BaseEndpoint
	}
	if opts.Region != "" {
		return "DynamoDB in " + opts.Region
	}
	return "DynamoDB (no region set)"
}

func (t *Table) usable() error {
	if t.client == nil {
		return errors.New("lease table: no DynamoDB client")
	}
	if t.name == "" {
		return errors.New("lease table: no table name")
	}
	return nil
}

func (t *Table) writable() error {
	if err := t.usable(); err != nil {
		return err
	}
	if t.workerID == "" {
		return fmt.Errorf("lease table %s: no worker id, so this handle cannot own leases", t.name)
	}
	return nil
}

// Ensure makes sure the lease table exists and is ACTIVE. It creates the table (on-demand
// capacity, hash key ShardID) only when DescribeTable says it does not exist, and then waits for
// it to become ACTIVE until ctx ends (at most five minutes). A table whose key is not ShardID alone
// is an error. Denied access returns an error wrapping ErrAccessDenied; any other failure is
// returned wrapped and nothing is created.
func (t *Table) Ensure(ctx context.Context) error {
	if err := t.usable(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, ensureMaxWait)
	defer cancel()

	out, err := t.client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(t.name)})
	var notFound *types.ResourceNotFoundException
	switch {
	case err == nil:
		if err := t.checkSchema(out.Table); err != nil {
			return err
		}
		if out.Table.TableStatus == types.TableStatusActive {
			return nil
		}
	case errors.As(err, &notFound) && t.noCreate:
		return fmt.Errorf("%w (leases.create_table is false: create it, or allow shardhose to)", ErrTableNotFound)
	case errors.As(err, &notFound):
		if err := t.create(ctx); err != nil {
			return err
		}
	default:
		return t.fail("describe lease table", err)
	}
	return t.waitActive(ctx)
}

func (t *Table) create(ctx context.Context) error {
	_, err := t.client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:   aws.String(t.name),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(attrShardID), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(attrShardID), KeyType: types.KeyTypeHash},
		},
	})
	var inUse *types.ResourceInUseException
	switch {
	case err == nil:
		t.log.Info("created lease table", "endpoint", t.endpoint)
	case errors.As(err, &inUse):
		// Another worker created it between our DescribeTable and CreateTable.
	default:
		return t.fail("create lease table", err)
	}
	return nil
}

// waitActive polls DescribeTable until the table is ACTIVE. Right after CreateTable, DescribeTable
// may still say the table does not exist; that is waited out too.
func (t *Table) waitActive(ctx context.Context) error {
	delay := 100 * time.Millisecond
	var status types.TableStatus = "not yet visible"
	for {
		out, err := t.client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(t.name)})
		var notFound *types.ResourceNotFoundException
		switch {
		case err == nil:
			status = out.Table.TableStatus
			switch status {
			case types.TableStatusActive:
				return t.checkSchema(out.Table)
			case types.TableStatusDeleting:
				return fmt.Errorf("lease table %q at %s is being deleted", t.name, t.endpoint)
			}
		case errors.As(err, &notFound):
		default:
			return t.fail("wait for lease table to become ACTIVE", err)
		}
		if err := clock.Sleep(ctx, t.clock, delay); err != nil {
			return fmt.Errorf("wait for lease table %q at %s to become ACTIVE (last status %s): %w", t.name, t.endpoint, status, err)
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// checkSchema refuses a table whose key is not the hash key ShardID (S) alone, for example a
// Redpanda Connect table (StreamID, ShardID) given by mistake.
func (t *Table) checkSchema(d *types.TableDescription) error {
	if d == nil {
		return fmt.Errorf("describe lease table %q at %s: no table description in the response", t.name, t.endpoint)
	}
	ok := len(d.KeySchema) == 1 &&
		aws.ToString(d.KeySchema[0].AttributeName) == attrShardID &&
		d.KeySchema[0].KeyType == types.KeyTypeHash
	for _, a := range d.AttributeDefinitions {
		if aws.ToString(a.AttributeName) == attrShardID && a.AttributeType != types.ScalarAttributeTypeS {
			ok = false
		}
	}
	if ok {
		return nil
	}
	var keys []string
	for _, k := range d.KeySchema {
		keys = append(keys, fmt.Sprintf("%s (%s)", aws.ToString(k.AttributeName), k.KeyType))
	}
	return fmt.Errorf("lease table %q at %s has key %s; shardhose needs the string hash key %s alone: use another table name",
		t.name, t.endpoint, strings.Join(keys, ", "), attrShardID)
}

// List returns every lease, sorted by shard id, with a strongly consistent scan of all pages.
func (t *Table) List(ctx context.Context) ([]Lease, error) {
	if err := t.usable(); err != nil {
		return nil, err
	}
	var leases []Lease
	var start map[string]types.AttributeValue
	for {
		out, err := t.client.Scan(ctx, &dynamodb.ScanInput{
			TableName:         aws.String(t.name),
			ConsistentRead:    aws.Bool(true),
			ExclusiveStartKey: start,
		})
		if err != nil {
			return nil, t.fail("list leases", err)
		}
		for _, item := range out.Items {
			l, err := parseLease(item)
			if err != nil {
				return nil, fmt.Errorf("list leases in %s: %w", t.name, err)
			}
			leases = append(leases, l)
		}
		if len(out.LastEvaluatedKey) == 0 {
			break
		}
		start = out.LastEvaluatedKey
	}
	slices.SortFunc(leases, func(a, b Lease) int { return strings.Compare(a.ShardID, b.ShardID) })
	return leases, nil
}

// Get reads one lease with a strongly consistent read; ok is false when there is no row.
func (t *Table) Get(ctx context.Context, shardID string) (l Lease, ok bool, err error) {
	if err := t.usable(); err != nil {
		return Lease{}, false, err
	}
	out, err := t.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(t.name),
		Key:            map[string]types.AttributeValue{attrShardID: attrS(shardID)},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return Lease{}, false, t.fail("get lease "+shardID, err)
	}
	if len(out.Item) == 0 {
		return Lease{}, false, nil
	}
	l, err = parseLease(out.Item)
	if err != nil {
		return Lease{}, false, fmt.Errorf("get lease %s: %w", shardID, err)
	}
	return l, true, nil
}

// CreateIfAbsent writes a free lease row for shardID with its parents (at most two) unless a row
// exists already, in which case it does nothing and returns nil.
func (t *Table) CreateIfAbsent(ctx context.Context, shardID string, parents []string) error {
	if err := t.usable(); err != nil {
		return err
	}
	if shardID == "" {
		return errors.New("create lease: empty shard id")
	}
	if len(parents) > 2 || slices.Contains(parents, "") {
		return fmt.Errorf("create lease %s: want at most two non-empty parent shard ids, got %q", shardID, parents)
	}
	item := map[string]types.AttributeValue{attrShardID: attrS(shardID)}
	if len(parents) > 0 {
		item[attrParent] = attrS(parents[0])
	}
	if len(parents) > 1 {
		item[attrAdjacentParent] = attrS(parents[1])
	}
	var e expr
	_, err := t.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                 aws.String(t.name),
		Item:                      item,
		ConditionExpression:       aws.String("attribute_not_exists(" + e.name(attrShardID) + ")"),
		ExpressionAttributeNames:  e.names,
		ExpressionAttributeValues: e.values,
	})
	if err != nil && !isConditionFailed(err) {
		return t.fail("create lease "+shardID, err)
	}
	return nil
}

// Take makes this worker the owner of a lease that is free or expired. seen is the lease as the
// caller last read it: the write succeeds only if the row's owner and counter are still those of
// seen (a row without LeaseCounter, as vmware-go-kcl writes, matches Counter 0). It sets the owner,
// bumps the counter, writes LeaseTimeout, removes any ClaimRequest, and counts an owner switch
// when the lease had another owner. It returns the lease as written; ErrLeaseLost when the row
// changed since seen.
func (t *Table) Take(ctx context.Context, seen Lease) (Lease, error) {
	if err := t.writable(); err != nil {
		return Lease{}, err
	}
	action := "take lease " + seen.ShardID
	var e expr
	cond := e.exists() + " AND " + e.ownerIs(seen.Owner) + " AND " + e.counterIs(seen.Counter)
	set := []string{
		e.name(attrAssignedTo) + " = " + e.value(attrS(t.workerID)),
		e.name(attrLeaseTimeout) + " = " + e.value(attrS(t.leaseTimeout())),
		e.name(attrCounter) + " = " + e.value(attrN(seen.Counter+1)),
	}
	if seen.Owner != "" && seen.Owner != t.workerID {
		sw := e.name(attrOwnerSwitches)
		set = append(set, fmt.Sprintf("%s = if_not_exists(%s, %s) + %s", sw, sw, e.value(attrN(0)), e.value(attrN(1))))
	}
	update := "SET " + strings.Join(set, ", ") + " REMOVE " + e.name(attrClaimRequest)
	l, err := t.update(ctx, action, seen.ShardID, &e, cond, update, func(cur Lease) bool {
		return cur.Owner == t.workerID && cur.Counter == seen.Counter+1
	})
	if err != nil {
		return Lease{}, err
	}
	t.log.Debug("took lease", "shard", l.ShardID, "counter", l.Counter, "previous_owner", seen.Owner)
	return l, nil
}

// Renew extends a lease this worker holds: conditional on the owner being this worker and the
// counter being held.Counter, it bumps the counter and writes LeaseTimeout. It returns the lease as
// written, so the owner sees a ClaimRequest; ErrLeaseLost when the lease was taken or changed.
func (t *Table) Renew(ctx context.Context, held Lease) (Lease, error) {
	if err := t.writable(); err != nil {
		return Lease{}, err
	}
	var e expr
	cond := e.heldBy(t.workerID, held.Counter)
	update := "SET " + e.name(attrCounter) + " = " + e.value(attrN(held.Counter+1)) + ", " +
		e.name(attrLeaseTimeout) + " = " + e.value(attrS(t.leaseTimeout()))
	return t.update(ctx, "renew lease "+held.ShardID, held.ShardID, &e, cond, update, func(cur Lease) bool {
		return cur.Owner == t.workerID && cur.Counter == held.Counter+1
	})
}

// Checkpoint records that the shard has been processed up to pos, or to its end when shardEnd is
// true (pos is then ignored). It is fenced like Renew and renews the lease as well: it bumps the
// counter, writes LeaseTimeout and resets OwnerSwitchesSinceCheckpoint. It returns the lease as
// written.
//
// A checkpoint never moves backwards: without writing anything it returns ErrCheckpointRefused when
// pos is before held.Checkpoint, when held is already at SHARD_END, or when pos is not a valid
// position. The fence makes the comparison with held sound, since every checkpoint write bumps
// the counter. ErrLeaseLost when the lease was taken or changed.
func (t *Table) Checkpoint(ctx context.Context, held Lease, pos record.Position, shardEnd bool) (Lease, error) {
	return t.CheckpointDelivered(ctx, held, pos, shardEnd, nil)
}

// CheckpointDelivered is Checkpoint that also records, in the same fenced write, the position up
// to which each exactly-once sink holds the shard's records (SinkPositions). delivered is merged
// into the positions the row holds (held.Delivered): a sink named in both gets the new position,
// the others keep theirs. Nil or empty delivered leaves SinkPositions as it is. No position may
// be invalid (ErrCheckpointRefused).
func (t *Table) CheckpointDelivered(ctx context.Context, held Lease, pos record.Position, shardEnd bool, delivered map[string]record.Position) (Lease, error) {
	if err := t.writable(); err != nil {
		return Lease{}, err
	}
	action := "checkpoint lease " + held.ShardID
	switch {
	case held.ShardEnd:
		return Lease{}, fmt.Errorf("%s: %w: the shard is already checkpointed at %s", action, ErrCheckpointRefused, ShardEnd)
	case shardEnd:
	case !isSequenceNumber(pos.SequenceNumber) || pos.SubSequenceNumber < 0:
		return Lease{}, fmt.Errorf("%s: %w: %q is not a valid position", action, ErrCheckpointRefused, pos.String())
	case pos.Compare(held.Checkpoint) < 0:
		return Lease{}, fmt.Errorf("%s: %w: position %s is before the stored checkpoint %s", action, ErrCheckpointRefused, pos, held.Checkpoint)
	}
	var positions map[string]types.AttributeValue
	if len(delivered) > 0 {
		positions = make(map[string]types.AttributeValue, len(held.Delivered)+len(delivered))
		for name, p := range held.Delivered {
			positions[name] = attrS(p.String())
		}
		for name, p := range delivered {
			if name == "" || !isSequenceNumber(p.SequenceNumber) || p.SubSequenceNumber < 0 {
				return Lease{}, fmt.Errorf("%s: %w: delivered position %q of sink %q is not valid", action, ErrCheckpointRefused, p.String(), name)
			}
			positions[name] = attrS(p.String())
		}
	}
	var e expr
	cond := e.heldBy(t.workerID, held.Counter)
	set := []string{
		e.name(attrCounter) + " = " + e.value(attrN(held.Counter+1)),
		e.name(attrLeaseTimeout) + " = " + e.value(attrS(t.leaseTimeout())),
		e.name(attrOwnerSwitches) + " = " + e.value(attrN(0)),
	}
	if positions != nil {
		set = append(set, e.name(attrSinkPositions)+" = "+e.value(&types.AttributeValueMemberM{Value: positions}))
	}
	var update string
	if shardEnd {
		set = append(set, e.name(attrCheckpoint)+" = "+e.value(attrS(ShardEnd)))
		update = "SET " + strings.Join(set, ", ") + " REMOVE " + e.name(attrSubSequence)
	} else {
		set = append(set,
			e.name(attrCheckpoint)+" = "+e.value(attrS(pos.SequenceNumber)),
			e.name(attrSubSequence)+" = "+e.value(attrN(pos.SubSequenceNumber)))
		update = "SET " + strings.Join(set, ", ")
	}
	return t.update(ctx, action, held.ShardID, &e, cond, update, func(cur Lease) bool {
		if cur.Owner != t.workerID || cur.Counter != held.Counter+1 {
			return false
		}
		for name, p := range delivered {
			if cur.Delivered[name] != p {
				return false
			}
		}
		if shardEnd {
			return cur.ShardEnd
		}
		return !cur.ShardEnd && cur.Checkpoint == pos
	})
}

// Release gives up a lease this worker holds: fenced like Renew, it removes the owner and bumps the
// counter. A ClaimRequest stays, so the claimant can see the lease is meant for it and take it.
// ErrLeaseLost when the lease was no longer this worker's to release. Releasing again with the
// same held lease succeeds while nobody else has written the row (see Table on retries).
func (t *Table) Release(ctx context.Context, held Lease) error {
	if err := t.writable(); err != nil {
		return err
	}
	var e expr
	cond := e.heldBy(t.workerID, held.Counter)
	update := "SET " + e.name(attrCounter) + " = " + e.value(attrN(held.Counter+1)) +
		" REMOVE " + e.name(attrAssignedTo)
	_, err := t.update(ctx, "release lease "+held.ShardID, held.ShardID, &e, cond, update, func(cur Lease) bool {
		return cur.Owner == "" && cur.Counter == held.Counter+1
	})
	if err != nil {
		return err
	}
	t.log.Debug("released lease", "shard", held.ShardID, "counter", held.Counter+1)
	return nil
}

// Claim asks the owner of a lease to hand it over to this worker, by setting ClaimRequest. It is
// conditional on the owner still being seen.Owner and on there being no claim by another worker
// (repeating one's own claim succeeds). It leaves the counter alone, so the owner's writes keep
// succeeding; the owner sees the claim in the lease returned by its next Renew and decides when to
// Release. ErrLeaseLost when the owner changed or another claim is pending.
func (t *Table) Claim(ctx context.Context, seen Lease) error {
	if err := t.writable(); err != nil {
		return err
	}
	action := "claim lease " + seen.ShardID
	if seen.Owner == "" || seen.Owner == t.workerID {
		return fmt.Errorf("%s: the lease is owned by %q, not by another worker; only a lease another worker holds can be claimed", action, seen.Owner)
	}
	var e expr
	claim := e.name(attrClaimRequest)
	me := e.value(attrS(t.workerID))
	cond := fmt.Sprintf("%s = %s AND (attribute_not_exists(%s) OR %s = %s)",
		e.name(attrAssignedTo), e.value(attrS(seen.Owner)), claim, claim, me)
	_, err := t.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(t.name),
		Key:                       map[string]types.AttributeValue{attrShardID: attrS(seen.ShardID)},
		ConditionExpression:       aws.String(cond),
		UpdateExpression:          aws.String("SET " + claim + " = " + me),
		ExpressionAttributeNames:  e.names,
		ExpressionAttributeValues: e.values,
	})
	switch {
	case err == nil:
		t.log.Debug("claimed lease", "shard", seen.ShardID, "owner", seen.Owner)
		return nil
	case isConditionFailed(err):
		return fmt.Errorf("%s: %w: owner is no longer %s or another worker claimed it first", action, ErrLeaseLost, seen.Owner)
	default:
		return t.fail(action, err)
	}
}

// Delete removes the row of a shard that has been read to its end (a finished parent), conditional
// on its checkpoint being SHARD_END. Deleting a row that is already gone succeeds. A row not at
// SHARD_END is left alone and ErrShardNotEnded returned.
func (t *Table) Delete(ctx context.Context, seen Lease) error {
	if err := t.usable(); err != nil {
		return err
	}
	action := "delete lease " + seen.ShardID
	var e expr
	cond := fmt.Sprintf("attribute_not_exists(%s) OR %s = %s",
		e.name(attrShardID), e.name(attrCheckpoint), e.value(attrS(ShardEnd)))
	_, err := t.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 aws.String(t.name),
		Key:                       map[string]types.AttributeValue{attrShardID: attrS(seen.ShardID)},
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  e.names,
		ExpressionAttributeValues: e.values,
	})
	switch {
	case err == nil:
		t.log.Debug("deleted finished lease", "shard", seen.ShardID)
		return nil
	case isConditionFailed(err):
		return fmt.Errorf("%s: %w", action, ErrShardNotEnded)
	default:
		return t.fail(action, err)
	}
}

// update runs one fenced UpdateItem and returns the row as written. When the condition fails it
// reads the row back: if applied reports that the row shows exactly this write (the SDK retried a
// request that had succeeded), the write counts as done; otherwise the result is ErrLeaseLost.
func (t *Table) update(ctx context.Context, action, shardID string, e *expr, cond, update string, applied func(Lease) bool) (Lease, error) {
	out, err := t.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(t.name),
		Key:                       map[string]types.AttributeValue{attrShardID: attrS(shardID)},
		ConditionExpression:       aws.String(cond),
		UpdateExpression:          aws.String(update),
		ExpressionAttributeNames:  e.names,
		ExpressionAttributeValues: e.values,
		ReturnValues:              types.ReturnValueAllNew,
	})
	if err == nil {
		l, err := parseLease(out.Attributes)
		if err != nil {
			return Lease{}, fmt.Errorf("%s: written, but the returned row: %w", action, err)
		}
		return l, nil
	}
	if !isConditionFailed(err) {
		return Lease{}, t.fail(action, err)
	}
	cur, found, getErr := t.Get(ctx, shardID)
	if getErr != nil {
		return Lease{}, fmt.Errorf("%s: %w; reading the row back: %w", action, ErrLeaseLost, getErr)
	}
	if found && applied(cur) {
		t.log.Info("conditional write failed on an SDK retry of a write that had been applied; the row shows our write",
			"shard", shardID, "action", action, "counter", cur.Counter)
		return cur, nil
	}
	return Lease{}, fmt.Errorf("%s: %w (%s)", action, ErrLeaseLost, describeRow(cur, found))
}

func describeRow(l Lease, found bool) string {
	if !found {
		return "the row is gone"
	}
	owner := l.Owner
	if owner == "" {
		owner = "nobody"
	}
	s := fmt.Sprintf("row now: owner %s, counter %d", owner, l.Counter)
	if l.ClaimRequest != "" {
		s += ", claimed by " + l.ClaimRequest
	}
	return s
}

func (t *Table) leaseTimeout() string {
	return t.clock.Now().Add(t.leaseDuration).UTC().Format(time.RFC3339)
}

// tableError is an AWS error classified as one of the package's sentinels; both stay in the chain.
type tableError struct {
	msg      string
	sentinel error
	cause    error
}

func (e *tableError) Error() string   { return e.msg }
func (e *tableError) Unwrap() []error { return []error{e.sentinel, e.cause} }

// fail wraps an AWS error from action, turning a missing table into ErrTableNotFound and denied
// access into ErrAccessDenied, each with a one-line message naming the table and endpoint.
func (t *Table) fail(action string, err error) error {
	var notFound *types.ResourceNotFoundException
	if errors.As(err, &notFound) {
		return &tableError{
			msg:      fmt.Sprintf("%s: lease table %q not found at %s (Ensure creates it)", action, t.name, t.endpoint),
			sentinel: ErrTableNotFound,
			cause:    err,
		}
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode() == "AccessDeniedException" {
		return &tableError{
			msg: fmt.Sprintf("%s: access denied to lease table %q at %s: %s",
				action, t.name, t.endpoint, apiErr.ErrorMessage()),
			sentinel: ErrAccessDenied,
			cause:    err,
		}
	}
	return fmt.Errorf("%s (table %s): %w", action, t.name, err)
}

func isConditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

// expr collects the placeholders of one request's expressions. DynamoDB rejects unused names and
// values, so they are registered only as the expressions use them.
type expr struct {
	names  map[string]string
	values map[string]types.AttributeValue
}

// name returns the placeholder of an attribute name (every attribute goes through a placeholder,
// so reserved words never matter).
func (e *expr) name(attr string) string {
	if e.names == nil {
		e.names = map[string]string{}
	}
	ph := "#" + attr
	e.names[ph] = attr
	return ph
}

func (e *expr) value(v types.AttributeValue) string {
	if e.values == nil {
		e.values = map[string]types.AttributeValue{}
	}
	ph := fmt.Sprintf(":v%d", len(e.values))
	e.values[ph] = v
	return ph
}

// exists keeps a conditional UpdateItem from creating a row that is not there.
func (e *expr) exists() string { return "attribute_exists(" + e.name(attrShardID) + ")" }

// ownerIs matches the owner; "" matches a free row (no AssignedTo, or an empty one).
func (e *expr) ownerIs(owner string) string {
	a := e.name(attrAssignedTo)
	if owner == "" {
		// Not size(a) = 0: dynalite gets size("") wrong, and empty string values are valid here.
		return fmt.Sprintf("(attribute_not_exists(%s) OR %s = %s)", a, a, e.value(attrS("")))
	}
	return a + " = " + e.value(attrS(owner))
}

// counterIs matches the fencing counter; 0 also matches a row without one.
func (e *expr) counterIs(n int64) string {
	c := e.name(attrCounter)
	if n == 0 {
		return fmt.Sprintf("(attribute_not_exists(%s) OR %s = %s)", c, c, e.value(attrN(0)))
	}
	return c + " = " + e.value(attrN(n))
}

// heldBy is the fence of the owner's own writes.
func (e *expr) heldBy(owner string, counter int64) string {
	return e.exists() + " AND " + e.ownerIs(owner) + " AND " + e.counterIs(counter)
}
