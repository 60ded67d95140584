// Package checkpoint is the lease table: one DynamoDB row per shard saying which worker owns the
// shard and how far it has been processed. Every write that touches ownership or the checkpoint is
// a conditional write fenced by a counter, so a worker that has lost a lease can never overwrite
// the row of the worker that took it over.
//
// # Table layout
//
// The attribute names are those of vmware-go-kcl-v2, so either library can read the other's rows:
//
//	ShardID        S  hash key
//	AssignedTo     S  owner worker id; absent = free
//	LeaseTimeout   S  RFC 3339, now + lease duration, written on take, renew and checkpoint;
//	                  informational only: expiry is decided by [ExpiryTracker]
//	Checkpoint     S  a sequence number, or SHARD_END; absent = no checkpoint
//	ParentShardId  S  parent shard
//	ClaimRequest   S  a worker asking the owner to hand the lease over
//
// and our additions:
//
//	LeaseCounter                   N  fencing token, bumped by every write that changes ownership or
//	                                  the checkpoint (absent on rows written by vmware-go-kcl = 0)
//	CheckpointSubSequenceNumber    N  index of the user record inside a KPL aggregate
//	AdjacentParentShardId          S  second parent, after a merge
//	OwnerSwitchesSinceCheckpoint   N  takes by a new owner since the last checkpoint
//	SinkPositions                  M  sink name → position ("seq" or "seq.sub") up to which that
//	                                  exactly-once sink holds the shard's records; written with
//	                                  the checkpoint, fenced like it
//
// # Fencing
//
// Take, Renew, Checkpoint and Release succeed only when the row's LeaseCounter (and owner) still
// equal what the caller last saw, and each of them bumps the counter. A worker whose view is stale
// gets [ErrLeaseLost] and must stop working on the shard at once. Because every checkpoint write
// also bumps the counter, a matching counter proves the row's checkpoint is the one the caller
// holds, which is how Checkpoint refuses to move backwards without reading first.
//
// Expiry compares no wall clocks across hosts: an [ExpiryTracker] notes, on the local monotonic
// clock, when each lease's counter last changed, as the Java KCL does.
package checkpoint

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/shardhose/shardhose/record"
)

// ShardEnd is the Checkpoint value of a shard that has been read to its end.
const ShardEnd = "SHARD_END"

// Attribute names of the lease table.
const (
	attrShardID        = "ShardID"
	attrAssignedTo     = "AssignedTo"
	attrLeaseTimeout   = "LeaseTimeout"
	attrCheckpoint     = "Checkpoint"
	attrParent         = "ParentShardId"
	attrClaimRequest   = "ClaimRequest"
	attrCounter        = "LeaseCounter"
	attrSubSequence    = "CheckpointSubSequenceNumber"
	attrAdjacentParent = "AdjacentParentShardId"
	attrOwnerSwitches  = "OwnerSwitchesSinceCheckpoint"
	attrSinkPositions  = "SinkPositions"
)

// Lease is one row of the lease table as read at one moment. It is a value: the Table's write
// methods take the Lease the caller last saw and return the row as written, and the caller must
// use the returned Lease (with its new Counter) for its next write.
type Lease struct {
	ShardID string
	// Owner is the worker holding the lease; "" means the lease is free.
	Owner string
	// Counter is the fencing token. 0 on a row that no shardhose worker has written yet.
	Counter int64
	// Checkpoint is the position of the last record processed; the zero Position means none.
	Checkpoint record.Position
	// ShardEnd reports that the shard was read to its end (Checkpoint is then zero).
	ShardEnd bool
	// ParentShardIDs holds 0, 1 or 2 parents (2 after a merge); the consumer reads a shard only
	// once its parents have reached SHARD_END.
	ParentShardIDs []string
	// ClaimRequest is the worker that asked the owner to hand the lease over, or "".
	ClaimRequest string
	// LeaseTimeout is the owner's wall-clock guess at when the lease would expire. Informational:
	// never compare it with this host's clock, use an ExpiryTracker.
	LeaseTimeout time.Time
	// OwnerSwitchesSinceCheckpoint counts takes by a different owner since the last checkpoint;
	// a lease that keeps moving without progress points at a worker that crashes on this shard.
	OwnerSwitchesSinceCheckpoint int64
	// Delivered maps the name of each exactly-once sink to the position up to which it holds the
	// shard's records (the last record of an object it knows is written), as of the last
	// checkpoint; nil when none was recorded.
	Delivered map[string]record.Position
}

// Free reports whether nobody owns the lease.
func (l Lease) Free() bool { return l.Owner == "" }

// parseLease turns a DynamoDB item into a Lease. A malformed LeaseTimeout is ignored (the field is
// informational); any other malformed attribute is an error naming the shard.
func parseLease(item map[string]types.AttributeValue) (Lease, error) {
	var l Lease
	id, err := stringAttr(item, attrShardID)
	if err != nil {
		return Lease{}, err
	}
	if id == "" {
		return Lease{}, errors.New("lease row without " + attrShardID)
	}
	l.ShardID = id
	wrap := func(err error) error { return fmt.Errorf("lease row %s: %w", id, err) }

	if l.Owner, err = stringAttr(item, attrAssignedTo); err != nil {
		return Lease{}, wrap(err)
	}
	if l.ClaimRequest, err = stringAttr(item, attrClaimRequest); err != nil {
		return Lease{}, wrap(err)
	}
	if l.Counter, err = numberAttr(item, attrCounter); err != nil {
		return Lease{}, wrap(err)
	}
	if l.OwnerSwitchesSinceCheckpoint, err = numberAttr(item, attrOwnerSwitches); err != nil {
		return Lease{}, wrap(err)
	}
	cp, err := stringAttr(item, attrCheckpoint)
	if err != nil {
		return Lease{}, wrap(err)
	}
	switch {
	case cp == ShardEnd:
		l.ShardEnd = true
	case cp != "":
		if !isSequenceNumber(cp) {
			return Lease{}, wrap(fmt.Errorf("%s %q is neither a sequence number nor %s", attrCheckpoint, cp, ShardEnd))
		}
		sub, err := numberAttr(item, attrSubSequence)
		if err != nil {
			return Lease{}, wrap(err)
		}
		l.Checkpoint = record.Position{SequenceNumber: cp, SubSequenceNumber: sub}
	}
	for _, name := range []string{attrParent, attrAdjacentParent} {
		p, err := stringAttr(item, name)
		if err != nil {
			return Lease{}, wrap(err)
		}
		if p != "" {
			l.ParentShardIDs = append(l.ParentShardIDs, p)
		}
	}
	if l.Delivered, err = positionsAttr(item, attrSinkPositions); err != nil {
		return Lease{}, wrap(err)
	}
	if ts, _ := stringAttr(item, attrLeaseTimeout); ts != "" {
		if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			l.LeaseTimeout = t
		}
	}
	return l, nil
}

// stringAttr returns a string attribute, "" when absent.
func stringAttr(item map[string]types.AttributeValue, name string) (string, error) {
	v, ok := item[name]
	if !ok {
		return "", nil
	}
	if _, null := v.(*types.AttributeValueMemberNULL); null {
		return "", nil
	}
	s, ok := v.(*types.AttributeValueMemberS)
	if !ok {
		return "", fmt.Errorf("attribute %s is %T, want a string", name, v)
	}
	return s.Value, nil
}

// numberAttr returns an integer number attribute, 0 when absent.
func numberAttr(item map[string]types.AttributeValue, name string) (int64, error) {
	v, ok := item[name]
	if !ok {
		return 0, nil
	}
	if _, null := v.(*types.AttributeValueMemberNULL); null {
		return 0, nil
	}
	n, ok := v.(*types.AttributeValueMemberN)
	if !ok {
		return 0, fmt.Errorf("attribute %s is %T, want a number", name, v)
	}
	i, err := strconv.ParseInt(n.Value, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("attribute %s: %w", name, err)
	}
	return i, nil
}

// positionsAttr reads a map of name → position ("seq" or "seq.sub"); nil when absent.
func positionsAttr(item map[string]types.AttributeValue, name string) (map[string]record.Position, error) {
	v, ok := item[name]
	if !ok {
		return nil, nil
	}
	if _, null := v.(*types.AttributeValueMemberNULL); null {
		return nil, nil
	}
	m, ok := v.(*types.AttributeValueMemberM)
	if !ok {
		return nil, fmt.Errorf("attribute %s is %T, want a map", name, v)
	}
	out := make(map[string]record.Position, len(m.Value))
	for k, pv := range m.Value {
		s, ok := pv.(*types.AttributeValueMemberS)
		if !ok {
			return nil, fmt.Errorf("attribute %s.%s is %T, want a string", name, k, pv)
		}
		p, err := record.ParsePosition(s.Value)
		if err != nil {
			return nil, fmt.Errorf("attribute %s.%s: %w", name, k, err)
		}
		out[k] = p
	}
	return out, nil
}

func isSequenceNumber(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	return strings.Trim(s, "0123456789") == ""
}

func attrS(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func attrN(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}
