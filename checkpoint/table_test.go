package checkpoint_test

// Failures the emulators cannot produce (denied access, throttling, a write applied but its
// response lost), against a fake of the DynamoDB API.

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/shardhose/shardhose/checkpoint"
)

// fakeDynamo answers the calls a test sets up; any other call panics.
type fakeDynamo struct {
	checkpoint.DynamoDBAPI
	describe func() (*dynamodb.DescribeTableOutput, error)
	update   func(*dynamodb.UpdateItemInput) (*dynamodb.UpdateItemOutput, error)
	get      func(*dynamodb.GetItemInput) (*dynamodb.GetItemOutput, error)
	scan     func(*dynamodb.ScanInput) (*dynamodb.ScanOutput, error)
	creates  int
}

func (f *fakeDynamo) DescribeTable(context.Context, *dynamodb.DescribeTableInput, ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	return f.describe()
}

func (f *fakeDynamo) CreateTable(context.Context, *dynamodb.CreateTableInput, ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error) {
	f.creates++
	return &dynamodb.CreateTableOutput{}, nil
}

func (f *fakeDynamo) UpdateItem(_ context.Context, in *dynamodb.UpdateItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	return f.update(in)
}

func (f *fakeDynamo) GetItem(_ context.Context, in *dynamodb.GetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return f.get(in)
}

func (f *fakeDynamo) Scan(_ context.Context, in *dynamodb.ScanInput, _ ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	return f.scan(in)
}

// sdkError wraps err the way the SDK returns service errors.
func sdkError(op string, err error) error {
	return &smithy.OperationError{ServiceID: "DynamoDB", OperationName: op, Err: err}
}

func TestEnsureAccessDenied(t *testing.T) {
	f := &fakeDynamo{describe: func() (*dynamodb.DescribeTableOutput, error) {
		return nil, sdkError("DescribeTable", &smithy.GenericAPIError{
			Code:    "AccessDeniedException",
			Message: "User: arn:aws:iam::123456789012:user/x is not authorized to perform: dynamodb:DescribeTable",
		})
	}}
	err := checkpoint.NewTable(f, "prod-leases", "w", checkpoint.Options{Logger: testLogger(t)}).Ensure(t.Context())
	if !errors.Is(err, checkpoint.ErrAccessDenied) {
		t.Fatalf("got %v, want ErrAccessDenied", err)
	}
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		t.Error("the AWS error is no longer in the chain")
	}
	msg := err.Error()
	if !strings.Contains(msg, `"prod-leases"`) || !strings.Contains(msg, "dynamodb:DescribeTable") || strings.Contains(msg, "\n") {
		t.Errorf("message %q: want one line naming the table and the denied action", msg)
	}
	if f.creates != 0 {
		t.Errorf("CreateTable called %d times after AccessDenied", f.creates)
	}
}

func TestEnsureOtherErrorsDoNotCreate(t *testing.T) {
	for _, cause := range []error{
		&types.InternalServerError{Message: aws.String("boom")},
		&smithy.GenericAPIError{Code: "ThrottlingException", Message: "slow down"},
		errors.New("dial tcp 127.0.0.1:1: connect: connection refused"),
	} {
		f := &fakeDynamo{describe: func() (*dynamodb.DescribeTableOutput, error) {
			return nil, sdkError("DescribeTable", cause)
		}}
		err := checkpoint.NewTable(f, "leases", "w", checkpoint.Options{Logger: testLogger(t)}).Ensure(t.Context())
		if err == nil || !errors.Is(err, cause) || errors.Is(err, checkpoint.ErrTableNotFound) || errors.Is(err, checkpoint.ErrAccessDenied) {
			t.Errorf("DescribeTable failing with %v: Ensure returned %v", cause, err)
		}
		if f.creates != 0 {
			t.Errorf("DescribeTable failing with %v: CreateTable called", cause)
		}
	}
}

func TestEnsureCreatesOnlyWhenNotFound(t *testing.T) {
	describes := 0
	f := &fakeDynamo{describe: func() (*dynamodb.DescribeTableOutput, error) {
		describes++
		if describes == 1 {
			return nil, sdkError("DescribeTable", &types.ResourceNotFoundException{Message: aws.String("not found")})
		}
		return &dynamodb.DescribeTableOutput{Table: &types.TableDescription{
			TableStatus:          types.TableStatusActive,
			KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("ShardID"), KeyType: types.KeyTypeHash}},
			AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("ShardID"), AttributeType: types.ScalarAttributeTypeS}},
		}}, nil
	}}
	if err := checkpoint.NewTable(f, "leases", "w", checkpoint.Options{Logger: testLogger(t)}).Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	if f.creates != 1 {
		t.Fatalf("CreateTable called %d times, want 1", f.creates)
	}
}

func item(kv ...string) map[string]types.AttributeValue {
	m := map[string]types.AttributeValue{}
	for i := 0; i < len(kv); i += 2 {
		if kv[i] == "LeaseCounter" {
			m[kv[i]] = &types.AttributeValueMemberN{Value: kv[i+1]}
			continue
		}
		m[kv[i]] = &types.AttributeValueMemberS{Value: kv[i+1]}
	}
	return m
}

// The SDK retried a Renew whose first attempt was applied but whose response was lost: the retry
// fails its condition against our own write, and the Table must see that it succeeded.
func TestSpuriousConditionFailureAfterRetryIsRecovered(t *testing.T) {
	f := &fakeDynamo{
		update: func(*dynamodb.UpdateItemInput) (*dynamodb.UpdateItemOutput, error) {
			return nil, sdkError("UpdateItem", &types.ConditionalCheckFailedException{Message: aws.String("The conditional request failed")})
		},
		get: func(*dynamodb.GetItemInput) (*dynamodb.GetItemOutput, error) {
			return &dynamodb.GetItemOutput{Item: item("ShardID", "s1", "AssignedTo", "a", "LeaseCounter", "8", "ClaimRequest", "b")}, nil
		},
	}
	tbl := checkpoint.NewTable(f, "leases", "a", checkpoint.Options{Logger: testLogger(t)})
	got, err := tbl.Renew(t.Context(), checkpoint.Lease{ShardID: "s1", Owner: "a", Counter: 7})
	if err != nil {
		t.Fatalf("Renew: %v", err)
	}
	if got.Counter != 8 || got.ClaimRequest != "b" {
		t.Fatalf("Renew returned %+v", got)
	}

	// The same failure when the row shows someone else's write is a lost lease.
	f.get = func(*dynamodb.GetItemInput) (*dynamodb.GetItemOutput, error) {
		return &dynamodb.GetItemOutput{Item: item("ShardID", "s1", "AssignedTo", "b", "LeaseCounter", "8")}, nil
	}
	_, err = tbl.Renew(t.Context(), checkpoint.Lease{ShardID: "s1", Owner: "a", Counter: 7})
	if !errors.Is(err, checkpoint.ErrLeaseLost) || !strings.Contains(err.Error(), "owner b, counter 8") {
		t.Fatalf("got %v, want ErrLeaseLost naming owner b at counter 8", err)
	}
	// And so is a checkpoint whose row shows our counter but not our position.
	f.get = func(*dynamodb.GetItemInput) (*dynamodb.GetItemOutput, error) {
		return &dynamodb.GetItemOutput{Item: item("ShardID", "s1", "AssignedTo", "a", "LeaseCounter", "8", "Checkpoint", "5")}, nil
	}
	_, err = tbl.Checkpoint(t.Context(), checkpoint.Lease{ShardID: "s1", Owner: "a", Counter: 7}, pos("6", 0), false)
	if !errors.Is(err, checkpoint.ErrLeaseLost) {
		t.Fatalf("got %v, want ErrLeaseLost", err)
	}
}

func TestListReadsAllPages(t *testing.T) {
	f := &fakeDynamo{scan: func(in *dynamodb.ScanInput) (*dynamodb.ScanOutput, error) {
		if !aws.ToBool(in.ConsistentRead) {
			t.Error("Scan without ConsistentRead")
		}
		if in.ExclusiveStartKey == nil {
			return &dynamodb.ScanOutput{
				Items:            []map[string]types.AttributeValue{item("ShardID", "s2"), item("ShardID", "s1")},
				LastEvaluatedKey: item("ShardID", "s1"),
			}, nil
		}
		return &dynamodb.ScanOutput{Items: []map[string]types.AttributeValue{item("ShardID", "s0", "AssignedTo", "a")}}, nil
	}}
	leases, err := checkpoint.NewTable(f, "leases", "a", checkpoint.Options{Logger: testLogger(t)}).List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(leases) != 3 || leases[0].ShardID != "s0" || leases[0].Owner != "a" || leases[2].ShardID != "s2" {
		t.Fatalf("List returned %+v", leases)
	}
}

func TestMalformedRowIsAnErrorNamingTheShard(t *testing.T) {
	f := &fakeDynamo{get: func(*dynamodb.GetItemInput) (*dynamodb.GetItemOutput, error) {
		return &dynamodb.GetItemOutput{Item: item("ShardID", "s1", "Checkpoint", "TRIM_HORIZON")}, nil
	}}
	_, _, err := checkpoint.NewTable(f, "leases", "a", checkpoint.Options{Logger: testLogger(t)}).Get(t.Context(), "s1")
	if err == nil || !strings.Contains(err.Error(), "s1") || !strings.Contains(err.Error(), "TRIM_HORIZON") {
		t.Fatalf("got %v, want an error naming the shard and the bad value", err)
	}
}
