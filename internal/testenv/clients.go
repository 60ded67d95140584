package testenv

import (
	"net/url"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/shardhose/shardhose/consumer/getrecords"
)

// AWSConfig returns an SDK configuration for one server of the local stack: static credentials
// test/test, region us-east-1, endpoint as the base endpoint, and the SDK's default retryer and
// HTTP client.
//
// It is built directly rather than by config.LoadDefaultConfig, so nothing in the environment or
// in ~/.aws (profiles, AWS_ENDPOINT_URL_*, AWS_REGION, real credentials) can point a test at
// another endpoint or account.
func AWSConfig(t testing.TB, endpoint string) aws.Config {
	t.Helper()
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme == "" || u.Host == "" {
		t.Fatalf("local stack endpoint %q is not an absolute URL (err: %v)", endpoint, err)
	}
	return aws.Config{
		Region:       Region,
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String(endpoint),
	}
}

// KinesisClient returns a client of kinesis-local, the Kinesis server for behaviour tests.
func KinesisClient(t testing.TB, e Env) *kinesis.Client {
	t.Helper()
	return kinesisClient(t, e.Kinesis)
}

// KinesaliteClient returns a client of kinesalite, the Kinesis server for throughput tests.
func KinesaliteClient(t testing.TB, e Env) *kinesis.Client {
	t.Helper()
	return kinesisClient(t, e.Kinesalite)
}

// kinesisClient decodes GetRecords responses as the daemon does (getrecords.Protocol).
func kinesisClient(t testing.TB, endpoint string) *kinesis.Client {
	t.Helper()
	return kinesis.NewFromConfig(AWSConfig(t, endpoint), func(o *kinesis.Options) {
		o.BaseEndpoint = aws.String(endpoint)
	}, getrecords.WithProtocol(getrecords.DefaultBodies))
}

// DynamoDBClient returns a client of dynalite.
func DynamoDBClient(t testing.TB, e Env) *dynamodb.Client {
	t.Helper()
	return dynamodb.NewFromConfig(AWSConfig(t, e.DynamoDB), func(o *dynamodb.Options) {
		o.BaseEndpoint = aws.String(e.DynamoDB)
	})
}

// S3Client returns a client of moto's S3, addressing buckets by path (http://host/bucket/key),
// since moto's endpoint is an IP address and cannot take bucket subdomains.
func S3Client(t testing.TB, e Env) *s3.Client {
	t.Helper()
	return s3.NewFromConfig(AWSConfig(t, e.Moto), func(o *s3.Options) {
		o.BaseEndpoint = aws.String(e.Moto)
		o.UsePathStyle = true
	})
}

// SQSClient returns a client of moto's SQS.
func SQSClient(t testing.TB, e Env) *sqs.Client {
	t.Helper()
	return sqs.NewFromConfig(AWSConfig(t, e.Moto), func(o *sqs.Options) {
		o.BaseEndpoint = aws.String(e.Moto)
	})
}
