package awsclient

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/internal/testenv"
)

// Every client reaches its emulator of the local stack with static credentials, and S3 works
// path-style end to end.
func TestClientsAgainstLocalStack(t *testing.T) {
	env := testenv.Require(t)
	cfg := config.AWS{
		Region: env.Region,
		Endpoints: config.Endpoints{
			Kinesis: env.Kinesis, DynamoDB: env.DynamoDB, S3: env.Moto, SQS: env.Moto,
		},
		Credentials: config.Credentials{Source: "static", AccessKeyID: "test", SecretAccessKey: "test"},
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	awsCfg, err := Load(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}

	if _, err := Kinesis(awsCfg, cfg).ListStreams(ctx, &kinesis.ListStreamsInput{}); err != nil {
		t.Errorf("kinesis ListStreams at %s: %v", env.Kinesis, err)
	}
	if _, err := DynamoDB(awsCfg, cfg).ListTables(ctx, &dynamodb.ListTablesInput{}); err != nil {
		t.Errorf("dynamodb ListTables at %s: %v", env.DynamoDB, err)
	}
	if _, err := SQS(awsCfg, cfg).ListQueues(ctx, &sqs.ListQueuesInput{}); err != nil {
		t.Errorf("sqs ListQueues at %s: %v", env.Moto, err)
	}

	s3c := S3(awsCfg, cfg)
	bucket := testenv.UniqueName(t, "awsclient")
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("s3 CreateBucket %s at %s: %v", bucket, env.Moto, err)
	}
	const body = `{"hello":"world"}` + "\n"
	if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String("2026/01/02/03/x.json"), Body: strings.NewReader(body),
	}); err != nil {
		t.Fatalf("s3 PutObject: %v", err)
	}
	out, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("2026/01/02/03/x.json")})
	if err != nil {
		t.Fatalf("s3 GetObject: %v", err)
	}
	defer out.Body.Close()
	got, err := io.ReadAll(out.Body)
	if err != nil || string(got) != body {
		t.Errorf("s3 object = %q, %v; want %q", got, err, body)
	}
}
