package checkpoint_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/shardhose/shardhose/checkpoint"
	"github.com/shardhose/shardhose/internal/testenv"
	"github.com/shardhose/shardhose/record"
)

// dynamoClient returns a client for the local stack's DynamoDB. The default HTTP client is kept:
// AWS_CA_BUNDLE is set on these machines, and a plain *http.Client cannot take it.
func dynamoClient(t *testing.T, env testenv.Env) *dynamodb.Client {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(t.Context(),
		config.WithRegion(env.Region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
	)
	if err != nil {
		t.Fatalf("load AWS config: %v", err)
	}
	return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(env.DynamoDB) })
}

// countingClient counts CreateTable calls on the way to a real client.
type countingClient struct {
	*dynamodb.Client
	creates atomic.Int32
}

func (c *countingClient) CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error) {
	c.creates.Add(1)
	return c.Client.CreateTable(ctx, in, optFns...)
}

// fixture is one fresh lease table and a Table handle per worker.
type fixture struct {
	client *dynamodb.Client
	name   string
	log    *slog.Logger
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	env := testenv.Require(t)
	f := &fixture{client: dynamoClient(t, env), name: testenv.UniqueName(t, "leases"), log: testLogger(t)}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := f.worker("setup").Ensure(ctx); err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	t.Cleanup(func() {
		// t.Context is already cancelled during Cleanup.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := f.client.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(f.name)}); err != nil {
			t.Logf("delete table %s: %v", f.name, err)
		}
	})
	return f
}

func (f *fixture) worker(id string) *checkpoint.Table {
	return checkpoint.NewTable(f.client, f.name, id, checkpoint.Options{LeaseDuration: testLeaseDuration, Logger: f.log})
}

// testLogger writes to the test's output, shown when the test fails or with -v.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func mustGet(t *testing.T, tbl *checkpoint.Table, shard string) checkpoint.Lease {
	t.Helper()
	l, ok, err := tbl.Get(t.Context(), shard)
	if err != nil {
		t.Fatalf("Get %s: %v", shard, err)
	}
	if !ok {
		t.Fatalf("Get %s: no row", shard)
	}
	return l
}

func mustCreate(t *testing.T, tbl *checkpoint.Table, shard string, parents ...string) checkpoint.Lease {
	t.Helper()
	if err := tbl.CreateIfAbsent(t.Context(), shard, parents); err != nil {
		t.Fatalf("CreateIfAbsent %s: %v", shard, err)
	}
	return mustGet(t, tbl, shard)
}

func mustTake(t *testing.T, tbl *checkpoint.Table, seen checkpoint.Lease) checkpoint.Lease {
	t.Helper()
	l, err := tbl.Take(t.Context(), seen)
	if err != nil {
		t.Fatalf("%s Take %s: %v", tbl.WorkerID(), seen.ShardID, err)
	}
	return l
}

func mustCheckpoint(t *testing.T, tbl *checkpoint.Table, held checkpoint.Lease, seq string, sub int64) checkpoint.Lease {
	t.Helper()
	l, err := tbl.Checkpoint(t.Context(), held, record.Position{SequenceNumber: seq, SubSequenceNumber: sub}, false)
	if err != nil {
		t.Fatalf("%s Checkpoint %s at %s.%d: %v", tbl.WorkerID(), held.ShardID, seq, sub, err)
	}
	return l
}

func wantLost(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, checkpoint.ErrLeaseLost) {
		t.Fatalf("%s: got %v, want ErrLeaseLost", what, err)
	}
}

func pos(seq string, sub int64) record.Position {
	return record.Position{SequenceNumber: seq, SubSequenceNumber: sub}
}

func TestEnsureCreatesOnceAndIsIdempotent(t *testing.T) {
	env := testenv.Require(t)
	cc := &countingClient{Client: dynamoClient(t, env)}
	name := testenv.UniqueName(t, "leases")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := cc.Client.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(name)}); err != nil {
			t.Logf("delete table %s: %v", name, err)
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	// Three workers start together: one creates, the others see ResourceInUse or an existing table.
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() {
			errs[i] = checkpoint.NewTable(cc, name, "w", checkpoint.Options{Logger: testLogger(t)}).Ensure(ctx)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent Ensure %d: %v", i, err)
		}
	}
	if n := cc.creates.Load(); n < 1 || n > 3 {
		t.Fatalf("CreateTable called %d times by three concurrent Ensures", n)
	}
	out, err := cc.Client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	if out.Table.TableStatus != types.TableStatusActive {
		t.Errorf("status %s after Ensure, want ACTIVE", out.Table.TableStatus)
	}
	if bm := out.Table.BillingModeSummary; bm == nil || bm.BillingMode != types.BillingModePayPerRequest {
		t.Errorf("billing mode %+v, want PAY_PER_REQUEST", bm)
	}
	if ks := out.Table.KeySchema; len(ks) != 1 || aws.ToString(ks[0].AttributeName) != "ShardID" || ks[0].KeyType != types.KeyTypeHash {
		t.Errorf("key schema %+v, want hash key ShardID", ks)
	}

	before := cc.creates.Load()
	for range 2 {
		if err := checkpoint.NewTable(cc, name, "w", checkpoint.Options{Logger: testLogger(t)}).Ensure(ctx); err != nil {
			t.Fatalf("Ensure on an existing table: %v", err)
		}
	}
	if n := cc.creates.Load() - before; n != 0 {
		t.Errorf("Ensure on an existing table called CreateTable %d times", n)
	}
}

func TestEnsureRefusesForeignKeySchema(t *testing.T) {
	env := testenv.Require(t)
	c := dynamoClient(t, env)
	name := testenv.UniqueName(t, "redpanda")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// Redpanda Connect's layout: HASH StreamID, RANGE ShardID.
	_, err := c.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String("StreamID"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("ShardID"), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String("StreamID"), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String("ShardID"), KeyType: types.KeyTypeRange},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	// A table still CREATING cannot be deleted, so let it become ACTIVE before anything can fail.
	waiter := dynamodb.NewTableExistsWaiter(c, func(o *dynamodb.TableExistsWaiterOptions) { o.MinDelay = 100 * time.Millisecond })
	if err := waiter.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := c.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(name)}); err != nil {
			t.Logf("delete table %s: %v", name, err)
		}
	})
	err = checkpoint.NewTable(c, name, "w", checkpoint.Options{Logger: testLogger(t)}).Ensure(ctx)
	if err == nil || !strings.Contains(err.Error(), "StreamID (HASH)") || !strings.Contains(err.Error(), name) {
		t.Fatalf("Ensure on a (StreamID, ShardID) table: got %v, want an error naming the table and its key", err)
	}
}

func TestMissingTableIsErrTableNotFound(t *testing.T) {
	env := testenv.Require(t)
	name := testenv.UniqueName(t, "missing")
	tbl := checkpoint.NewTable(dynamoClient(t, env), name, "a", checkpoint.Options{Logger: testLogger(t)})
	_, err := tbl.List(t.Context())
	if !errors.Is(err, checkpoint.ErrTableNotFound) {
		t.Fatalf("List on a missing table: got %v, want ErrTableNotFound", err)
	}
	if !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), env.DynamoDB) {
		t.Errorf("error %q names neither the table nor the endpoint", err)
	}
	_, err = tbl.Take(t.Context(), checkpoint.Lease{ShardID: "s"})
	if !errors.Is(err, checkpoint.ErrTableNotFound) {
		t.Fatalf("Take on a missing table: got %v, want ErrTableNotFound", err)
	}
}

func TestTakeFreeLease(t *testing.T) {
	f := newFixture(t)
	a := f.worker("worker-a")
	seen := mustCreate(t, a, "shardId-000000000001", "shardId-000000000000")
	if !seen.Free() || seen.Counter != 0 || !seen.Checkpoint.IsZero() || seen.ShardEnd {
		t.Fatalf("new row %+v, want free with counter 0 and no checkpoint", seen)
	}
	if len(seen.ParentShardIDs) != 1 || seen.ParentShardIDs[0] != "shardId-000000000000" {
		t.Fatalf("parents %q", seen.ParentShardIDs)
	}

	before := time.Now()
	got := mustTake(t, a, seen)
	if got.Owner != "worker-a" || got.Counter != 1 || got.ShardID != seen.ShardID {
		t.Fatalf("Take returned %+v, want owner worker-a, counter 1", got)
	}
	if got.OwnerSwitchesSinceCheckpoint != 0 {
		t.Errorf("taking a free lease counted %d owner switches", got.OwnerSwitchesSinceCheckpoint)
	}
	// LeaseTimeout is written with second precision.
	lo, hi := before.Add(testLeaseDuration).Truncate(time.Second), time.Now().Add(testLeaseDuration+time.Second)
	if got.LeaseTimeout.Before(lo) || got.LeaseTimeout.After(hi) {
		t.Errorf("LeaseTimeout %v, want about now+%v", got.LeaseTimeout, testLeaseDuration)
	}
	if row := mustGet(t, a, seen.ShardID); row.Owner != "worker-a" || row.Counter != 1 {
		t.Errorf("row after Take: %+v", row)
	}

	// CreateIfAbsent on an existing row changes nothing and is not an error.
	if err := a.CreateIfAbsent(t.Context(), seen.ShardID, nil); err != nil {
		t.Fatalf("CreateIfAbsent on an existing row: %v", err)
	}
	if row := mustGet(t, a, seen.ShardID); row.Owner != "worker-a" || row.Counter != 1 || len(row.ParentShardIDs) != 1 {
		t.Errorf("CreateIfAbsent changed an existing row: %+v", row)
	}
}

func TestTakeWithStaleCounterFails(t *testing.T) {
	f := newFixture(t)
	a, b := f.worker("worker-a"), f.worker("worker-b")
	seen := mustCreate(t, a, "s1")
	mustTake(t, a, seen)

	_, err := b.Take(t.Context(), seen) // seen is free at counter 0; the row is now A's at 1
	wantLost(t, "Take with a stale seen lease", err)
	if !strings.Contains(err.Error(), "s1") || !strings.Contains(err.Error(), "worker-a") {
		t.Errorf("error %q names neither the shard nor the current owner", err)
	}
	// A free lease whose counter moved (taken and released since) cannot be taken from the old view either.
	if row := mustGet(t, a, "s1"); row.Owner != "worker-a" || row.Counter != 1 {
		t.Fatalf("row after the failed Take: %+v", row)
	}
	// Take of a row that does not exist must not create it.
	_, err = b.Take(t.Context(), checkpoint.Lease{ShardID: "no-such-shard"})
	wantLost(t, "Take of a missing row", err)
	if _, ok, _ := b.Get(t.Context(), "no-such-shard"); ok {
		t.Fatal("Take created a row")
	}
}

func TestConcurrentTakesHaveOneWinner(t *testing.T) {
	f := newFixture(t)
	seen := mustCreate(t, f.worker("setup"), "s1")
	const n = 8
	var wg sync.WaitGroup
	var won atomic.Int32
	for i := range n {
		tbl := f.worker("worker-" + string(rune('a'+i)))
		wg.Go(func() {
			_, err := tbl.Take(t.Context(), seen)
			switch {
			case err == nil:
				won.Add(1)
			case !errors.Is(err, checkpoint.ErrLeaseLost):
				t.Errorf("Take: %v", err)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d of %d concurrent Takes succeeded, want 1", won.Load(), n)
	}
	if row := mustGet(t, f.worker("x"), "s1"); row.Counter != 1 || row.Owner == "" {
		t.Fatalf("row after the race: %+v", row)
	}
}

// TestFencing is the reason the table exists: once B has taken A's lease, nothing A writes lands.
func TestFencing(t *testing.T) {
	f := newFixture(t)
	a, b := f.worker("worker-a"), f.worker("worker-b")
	heldA := mustTake(t, a, mustCreate(t, a, "s1"))
	heldA = mustCheckpoint(t, a, heldA, "100", 0)

	// B saw A's lease unchanged for a lease duration (A is paused, not dead) and takes it.
	seenByB, ok, err := b.Get(t.Context(), "s1")
	if err != nil || !ok {
		t.Fatalf("Get: %v %v", ok, err)
	}
	heldB := mustTake(t, b, seenByB)
	if heldB.Owner != "worker-b" || heldB.Counter != heldA.Counter+1 || heldB.OwnerSwitchesSinceCheckpoint != 1 {
		t.Fatalf("B's lease %+v, want owner worker-b, counter %d, one owner switch", heldB, heldA.Counter+1)
	}
	if heldB.Checkpoint != pos("100", 0) {
		t.Fatalf("B took over checkpoint %v, want 100", heldB.Checkpoint)
	}
	heldB = mustCheckpoint(t, b, heldB, "200", 0)
	if heldB.OwnerSwitchesSinceCheckpoint != 0 {
		t.Errorf("a checkpoint left %d owner switches", heldB.OwnerSwitchesSinceCheckpoint)
	}

	// A wakes up and carries on with its stale lease.
	_, err = a.Checkpoint(t.Context(), heldA, pos("300", 0), false)
	wantLost(t, "A's Checkpoint after B took over", err)
	_, err = a.Checkpoint(t.Context(), heldA, pos("150", 0), false) // ahead of A's view, behind B's
	wantLost(t, "A's lower Checkpoint after B took over", err)
	_, err = a.Checkpoint(t.Context(), heldA, record.Position{}, true)
	wantLost(t, "A's SHARD_END after B took over", err)
	_, err = a.Renew(t.Context(), heldA)
	wantLost(t, "A's Renew after B took over", err)
	wantLost(t, "A's Release after B took over", a.Release(t.Context(), heldA))
	// Taking it back needs a current view: A's old one is stale.
	_, err = a.Take(t.Context(), heldA)
	wantLost(t, "A's Take with its stale lease", err)

	row := mustGet(t, a, "s1")
	if row.Owner != "worker-b" || row.Counter != heldB.Counter || row.Checkpoint != pos("200", 0) || row.ShardEnd {
		t.Fatalf("row after A's stale writes: %+v, want B's (counter %d, checkpoint 200)", row, heldB.Counter)
	}
	// B carries on undisturbed.
	if _, err := b.Renew(t.Context(), heldB); err != nil {
		t.Fatalf("B's Renew: %v", err)
	}
}

func TestCheckpointNeverGoesBackwards(t *testing.T) {
	f := newFixture(t)
	a := f.worker("worker-a")
	held := mustTake(t, a, mustCreate(t, a, "s1"))
	held = mustCheckpoint(t, a, held, "49590338271490256608559692538361571095921575989136588898", 3)
	if held.Checkpoint != pos("49590338271490256608559692538361571095921575989136588898", 3) {
		t.Fatalf("checkpoint %v", held.Checkpoint)
	}

	for _, p := range []record.Position{
		pos("49590338271490256608559692538361571095921575989136588898", 2), // same record, earlier sub-record
		pos("9590338271490256608559692538361571095921575989136588898", 9),  // shorter = smaller
		{},             // zero
		pos("12a", 0),  // not a sequence number
		pos("100", -1), // negative sub-sequence number
	} {
		_, err := a.Checkpoint(t.Context(), held, p, false)
		if !errors.Is(err, checkpoint.ErrCheckpointRefused) {
			t.Errorf("Checkpoint at %q: got %v, want ErrCheckpointRefused", p.String(), err)
		}
	}
	if row := mustGet(t, a, "s1"); row.Counter != held.Counter || row.Checkpoint != held.Checkpoint {
		t.Fatalf("a refused checkpoint wrote: row %+v, held %+v", row, held)
	}

	// The same position again is fine (and renews); a later one moves forward.
	held = mustCheckpoint(t, a, held, held.Checkpoint.SequenceNumber, held.Checkpoint.SubSequenceNumber)
	held = mustCheckpoint(t, a, held, "49590338271490256608559692538361571095921575989136588899", 0)

	held, err := a.Checkpoint(t.Context(), held, record.Position{}, true)
	if err != nil {
		t.Fatalf("Checkpoint SHARD_END: %v", err)
	}
	if !held.ShardEnd || !held.Checkpoint.IsZero() {
		t.Fatalf("after SHARD_END: %+v", held)
	}
	out, err := f.client.GetItem(t.Context(), &dynamodb.GetItemInput{
		TableName: aws.String(f.name), Key: map[string]types.AttributeValue{"ShardID": &types.AttributeValueMemberS{Value: "s1"}}, ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	if cp, _ := out.Item["Checkpoint"].(*types.AttributeValueMemberS); cp == nil || cp.Value != checkpoint.ShardEnd {
		t.Errorf("Checkpoint attribute %#v, want %s", out.Item["Checkpoint"], checkpoint.ShardEnd)
	}
	if _, ok := out.Item["CheckpointSubSequenceNumber"]; ok {
		t.Error("CheckpointSubSequenceNumber left on a SHARD_END row")
	}
	_, err = a.Checkpoint(t.Context(), held, pos("49590338271490256608559692538361571095921575989136588900", 0), false)
	if !errors.Is(err, checkpoint.ErrCheckpointRefused) {
		t.Errorf("Checkpoint after SHARD_END: got %v, want ErrCheckpointRefused", err)
	}
}

func TestClaimReleaseTake(t *testing.T) {
	f := newFixture(t)
	a, b, c := f.worker("worker-a"), f.worker("worker-b"), f.worker("worker-c")
	heldA := mustTake(t, a, mustCreate(t, a, "s1"))

	seenByB := mustGet(t, b, "s1")
	if err := b.Claim(t.Context(), seenByB); err != nil {
		t.Fatalf("B's Claim: %v", err)
	}
	if err := b.Claim(t.Context(), seenByB); err != nil {
		t.Fatalf("B's repeated Claim: %v", err)
	}
	if row := mustGet(t, b, "s1"); row.ClaimRequest != "worker-b" || row.Counter != heldA.Counter || row.Owner != "worker-a" {
		t.Fatalf("row after Claim: %+v, want ClaimRequest worker-b and an unchanged counter", row)
	}
	wantLost(t, "C's Claim over B's pending claim", c.Claim(t.Context(), mustGet(t, c, "s1")))
	if err := a.Claim(t.Context(), heldA); err == nil {
		t.Error("the owner could claim its own lease")
	}

	// A's fenced writes still succeed, and its Renew shows the claim.
	heldA, err := a.Renew(t.Context(), heldA)
	if err != nil {
		t.Fatalf("A's Renew after B's claim: %v", err)
	}
	if heldA.ClaimRequest != "worker-b" {
		t.Fatalf("A's Renew returned ClaimRequest %q, want worker-b", heldA.ClaimRequest)
	}
	heldA = mustCheckpoint(t, a, heldA, "500", 0)

	if err := a.Release(t.Context(), heldA); err != nil {
		t.Fatalf("A's Release: %v", err)
	}
	released := mustGet(t, b, "s1")
	if !released.Free() || released.ClaimRequest != "worker-b" || released.Counter != heldA.Counter+1 {
		t.Fatalf("row after Release: %+v, want free, still claimed by worker-b, counter %d", released, heldA.Counter+1)
	}
	// Releasing again with the same lease changes nothing: the row already shows that release.
	if err := a.Release(t.Context(), heldA); err != nil {
		t.Fatalf("A's repeated Release: %v", err)
	}
	if row := mustGet(t, b, "s1"); row.Counter != released.Counter || !row.Free() {
		t.Fatalf("a repeated Release wrote: %+v", row)
	}

	heldB := mustTake(t, b, released)
	if heldB.Owner != "worker-b" || heldB.ClaimRequest != "" || heldB.Checkpoint != pos("500", 0) {
		t.Fatalf("B's lease after Take: %+v, want owner worker-b, no claim, checkpoint 500", heldB)
	}
	// Once B has it, A's old lease is fenced out, and a claim naming the old owner fails.
	wantLost(t, "A's Release after B took it", a.Release(t.Context(), heldA))
	_, err = a.Renew(t.Context(), heldA)
	wantLost(t, "A's Renew after B took it", err)
	wantLost(t, "C's Claim with a stale owner", c.Claim(t.Context(), heldA))
}

func TestDeleteOnlyAtShardEnd(t *testing.T) {
	f := newFixture(t)
	a := f.worker("worker-a")
	held := mustCheckpoint(t, a, mustTake(t, a, mustCreate(t, a, "parent")), "100", 0)

	err := a.Delete(t.Context(), held)
	if !errors.Is(err, checkpoint.ErrShardNotEnded) {
		t.Fatalf("Delete before SHARD_END: got %v, want ErrShardNotEnded", err)
	}
	mustGet(t, a, "parent")
	if err := a.Delete(t.Context(), mustCreate(t, a, "fresh")); !errors.Is(err, checkpoint.ErrShardNotEnded) {
		t.Fatalf("Delete of a row without checkpoint: got %v, want ErrShardNotEnded", err)
	}

	held, err = a.Checkpoint(t.Context(), held, record.Position{}, true)
	if err != nil {
		t.Fatal(err)
	}
	// Another worker (a child's owner) deletes the finished parent.
	b := f.worker("worker-b")
	if err := b.Delete(t.Context(), held); err != nil {
		t.Fatalf("Delete at SHARD_END: %v", err)
	}
	if _, ok, err := a.Get(t.Context(), "parent"); err != nil || ok {
		t.Fatalf("row still there after Delete (ok=%v, err=%v)", ok, err)
	}
	if err := b.Delete(t.Context(), held); err != nil {
		t.Fatalf("second Delete of a gone row: %v", err)
	}
	_, err = a.Renew(t.Context(), held)
	wantLost(t, "Renew of a deleted row", err)
	if _, ok, _ := a.Get(t.Context(), "parent"); ok {
		t.Fatal("Renew recreated a deleted row")
	}
}

func TestListAndMergeParents(t *testing.T) {
	f := newFixture(t)
	a := f.worker("worker-a")
	mustCreate(t, a, "s3", "s1", "s2")
	mustCreate(t, a, "s1")
	mustCreate(t, a, "s2")
	mustTake(t, a, mustGet(t, a, "s2"))
	if err := a.CreateIfAbsent(t.Context(), "s4", []string{"s1", "s2", "s3"}); err == nil {
		t.Error("CreateIfAbsent accepted three parents")
	}

	leases, err := a.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, l := range leases {
		ids = append(ids, l.ShardID)
	}
	if strings.Join(ids, ",") != "s1,s2,s3" {
		t.Fatalf("List returned %v, want s1,s2,s3 in order", ids)
	}
	if p := leases[2].ParentShardIDs; len(p) != 2 || p[0] != "s1" || p[1] != "s2" {
		t.Errorf("merge child's parents %q, want [s1 s2]", p)
	}
	if leases[1].Owner != "worker-a" || leases[1].Counter != 1 {
		t.Errorf("List shows s2 as %+v", leases[1])
	}
}

// TestTakeVmwareKCLRow takes over rows as vmware-go-kcl-v2 writes them: no LeaseCounter, an owner
// and a LeaseTimeout in RFC 3339, or no owner at all.
func TestTakeVmwareKCLRow(t *testing.T) {
	f := newFixture(t)
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	put := func(item map[string]types.AttributeValue) {
		t.Helper()
		if _, err := f.client.PutItem(t.Context(), &dynamodb.PutItemInput{TableName: aws.String(f.name), Item: item}); err != nil {
			t.Fatalf("PutItem: %v", err)
		}
	}
	const seq = "49590338271490256608559692538361571095921575989136588898"
	put(map[string]types.AttributeValue{
		"ShardID":       s("shardId-000000000001"),
		"AssignedTo":    s("kcl-worker-1"),
		"LeaseTimeout":  s(time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)),
		"Checkpoint":    s(seq),
		"ParentShardId": s("shardId-000000000000"),
	})
	put(map[string]types.AttributeValue{
		"ShardID":    s("shardId-000000000002"),
		"Checkpoint": s(checkpoint.ShardEnd),
	})

	put(map[string]types.AttributeValue{ // an empty owner, as some writers leave it, is free too
		"ShardID":    s("shardId-000000000003"),
		"AssignedTo": s(""),
	})

	a := f.worker("worker-a")
	blank := mustGet(t, a, "shardId-000000000003")
	if !blank.Free() {
		t.Fatalf("row with AssignedTo \"\" read as %+v", blank)
	}
	if got := mustTake(t, a, blank); got.Owner != "worker-a" || got.Counter != 1 {
		t.Fatalf("row with an empty owner after Take: %+v", got)
	}

	seen := mustGet(t, a, "shardId-000000000001")
	if seen.Counter != 0 || seen.Owner != "kcl-worker-1" || seen.Checkpoint != pos(seq, 0) || seen.LeaseTimeout.IsZero() {
		t.Fatalf("vmware row read as %+v", seen)
	}
	got := mustTake(t, a, seen)
	if got.Owner != "worker-a" || got.Counter != 1 || got.Checkpoint != pos(seq, 0) || got.OwnerSwitchesSinceCheckpoint != 1 {
		t.Fatalf("vmware row after Take: %+v", got)
	}
	if got.ParentShardIDs[0] != "shardId-000000000000" {
		t.Errorf("parent lost: %q", got.ParentShardIDs)
	}
	got = mustCheckpoint(t, a, got, seq, 1)
	if got.Counter != 2 {
		t.Errorf("counter %d after a checkpoint, want 2", got.Counter)
	}

	ended := mustGet(t, a, "shardId-000000000002")
	if !ended.Free() || !ended.ShardEnd {
		t.Fatalf("vmware SHARD_END row read as %+v", ended)
	}
	if err := a.Delete(t.Context(), ended); err != nil {
		t.Fatalf("Delete of a vmware SHARD_END row: %v", err)
	}
}

// TestSinkPositions: the delivered positions of exactly-once sinks go into the row with the
// checkpoint, in the same fenced write: merged per sink, read back by the next owner, and never
// written by a worker that lost the lease.
func TestSinkPositions(t *testing.T) {
	f := newFixture(t)
	a, b := f.worker("worker-a"), f.worker("worker-b")
	held := mustTake(t, a, mustCreate(t, a, "s1"))
	held, err := a.CheckpointDelivered(t.Context(), held, pos("100", 0), false, map[string]record.Position{"lake": pos("120", 0), "archive": pos("110", 2)})
	if err != nil {
		t.Fatal(err)
	}
	held, err = a.CheckpointDelivered(t.Context(), held, pos("130", 0), false, map[string]record.Position{"lake": pos("140", 0)})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]record.Position{"lake": pos("140", 0), "archive": pos("110", 2)}
	row := mustGet(t, b, "s1")
	if row.Checkpoint != pos("130", 0) || len(row.Delivered) != 2 || row.Delivered["lake"] != want["lake"] || row.Delivered["archive"] != want["archive"] {
		t.Fatalf("row: checkpoint %v, delivered %v; want 130 and %v", row.Checkpoint, row.Delivered, want)
	}
	// A plain checkpoint leaves them alone.
	held = mustCheckpoint(t, a, held, "150", 0)
	if got := mustGet(t, b, "s1").Delivered; got["lake"] != want["lake"] {
		t.Errorf("after a plain checkpoint: %v", got)
	}

	heldB := mustTake(t, b, mustGet(t, b, "s1"))
	if heldB.Delivered["lake"] != want["lake"] {
		t.Errorf("the next owner took %v", heldB.Delivered)
	}
	_, err = a.CheckpointDelivered(t.Context(), held, pos("160", 0), false, map[string]record.Position{"lake": pos("999", 0)})
	wantLost(t, "A's CheckpointDelivered after B took over", err)
	if got := mustGet(t, b, "s1").Delivered["lake"]; got != want["lake"] {
		t.Errorf("a stale worker moved the delivered position to %v", got)
	}
	_, err = b.CheckpointDelivered(t.Context(), heldB, pos("160", 0), false, map[string]record.Position{"lake": {SequenceNumber: "x"}})
	if !errors.Is(err, checkpoint.ErrCheckpointRefused) {
		t.Errorf("an invalid delivered position: %v, want ErrCheckpointRefused", err)
	}
}
