// Package awsclient turns the aws section of the configuration into AWS SDK clients: one
// aws.Config (region, credentials, an HTTP client with bounded dial and header timeouts, a
// bounded retryer, a timeout on every attempt, the SDK's log lines through slog), and
// per-service clients pointed at the configured endpoints.
//
// The SDK's own retries are kept short on purpose: the callers (consumer, lease manager, sinks)
// retry with their own policy under their own context, so an SDK call either succeeds or returns
// within a few seconds with an error the caller classifies. Each attempt is bounded by the
// aws.timeouts key of its kind of call (TimeoutError), and every error says how many attempts
// the call made (CallError), so a caller can log the real count.
package awsclient

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwschemas "github.com/aws/aws-sdk-go-v2/service/cloudwatch/schemas"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/firehose"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/middleware"
	"github.com/aws/smithy-go/transport/http/protocol/awsquery"

	"github.com/shardhose/shardhose/consumer/getrecords"

	"github.com/shardhose/shardhose/config"
)

// Service names accepted by Endpoint; they are the keys of aws.endpoints. Endpoint also accepts
// the SDK's ServiceID spelling (kinesis.ServiceID is "Kinesis"), compared without case.
const (
	ServiceKinesis  = "kinesis"
	ServiceDynamoDB = "dynamodb"
	ServiceS3       = "s3"
	ServiceSQS      = "sqs"
	ServiceSNS      = "sns"
	ServiceFirehose = "firehose"
	ServiceLambda   = "lambda"
	// ServiceCloudWatch's endpoint is aws.endpoints.cloudwatch.
	ServiceCloudWatch = "cloudwatch"
)

// HTTP and retry limits of every client.
const (
	// DialTimeout bounds connecting to an endpoint (TCP, not TLS).
	DialTimeout = 5 * time.Second
	// TLSHandshakeTimeout bounds the TLS handshake after connecting.
	TLSHandshakeTimeout = 10 * time.Second
	// ResponseHeaderTimeout bounds the wait for a response's headers once the request, body
	// included, is sent, for the calls aws.timeouts does not bound (S3 GetObject).
	ResponseHeaderTimeout = time.Minute
	// MaxIdleConnsPerHost keeps connections for many shards polling one endpoint at once.
	MaxIdleConnsPerHost = 64
	// MaxAttempts is how many times the SDK tries one call (the first try included).
	MaxAttempts = 3
	// MaxBackoff caps the SDK's wait between its attempts.
	MaxBackoff = 5 * time.Second
)

// Endpoint returns the endpoint URL for service: aws.endpoints.<service> when set, else
// aws.endpoint, else "" (the SDK resolves the real AWS endpoint of the region). Service is one of
// the Service* names or the SDK's ServiceID; an unknown service gets aws.endpoint.
func Endpoint(cfg config.AWS, service string) string {
	var specific string
	e := cfg.Endpoints
	switch strings.ToLower(service) {
	case ServiceKinesis:
		specific = e.Kinesis
	case ServiceDynamoDB:
		specific = e.DynamoDB
	case ServiceS3:
		specific = e.S3
	case ServiceSQS:
		specific = e.SQS
	case ServiceSNS:
		specific = e.SNS
	case ServiceFirehose:
		specific = e.Firehose
	case ServiceLambda:
		specific = e.Lambda
	case ServiceCloudWatch:
		specific = e.CloudWatch
	}
	if specific != "" {
		return specific
	}
	return cfg.Endpoint
}

// Load builds the aws.Config shared by every client: the region, the credentials
// (aws.credentials.source "static" uses the configured keys, "default" the SDK's chain), an HTTP
// client with the timeouts above, a standard retryer of MaxAttempts attempts without the
// client-side retry quota (which, once drained by an outage, fails calls that were never tried),
// a timeout on each attempt from cfg.Timeouts (a zero key means no bound), errors that carry
// their attempt count (CallError), and the SDK's own log lines sent to log (nil: slog.Default()).
// It does no network I/O for static credentials; the default chain may read files and, on EC2,
// the instance metadata service, within ctx.
func Load(ctx context.Context, cfg config.AWS, log *slog.Logger) (aws.Config, error) {
	if log == nil {
		log = slog.Default()
	}
	httpClient := awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) {
			d.Timeout = DialTimeout
			d.KeepAlive = 30 * time.Second
		}).
		WithTransportOptions(func(t *http.Transport) {
			t.TLSHandshakeTimeout = TLSHandshakeTimeout
			t.ResponseHeaderTimeout = ResponseHeaderTimeout
			t.MaxIdleConnsPerHost = MaxIdleConnsPerHost
		})

	opts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRegion(cfg.Region),
		awsconfig.WithHTTPClient(httpClient),
		awsconfig.WithLogger(SDKLogger(log)),
		awsconfig.WithAPIOptions([]func(*middleware.Stack) error{addCallBounds(cfg.Timeouts)}),
		awsconfig.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = MaxAttempts
				o.MaxBackoff = MaxBackoff
				o.RateLimiter = ratelimit.None
			})
		}),
	}
	switch c := cfg.Credentials; c.Source {
	case "static":
		if c.AccessKeyID == "" || c.SecretAccessKey == "" {
			return aws.Config{}, fmt.Errorf("aws.credentials: static credentials need access_key_id and secret_access_key")
		}
		opts = append(opts, awsconfig.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken)))
	case "default", "":
	default:
		return aws.Config{}, fmt.Errorf("aws.credentials.source %q: use default or static", c.Source)
	}

	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS SDK configuration: %w", err)
	}
	addCallLog(&awsCfg.APIOptions)
	return awsCfg, nil
}

// setEndpoint sets *base to service's endpoint when one is configured, and leaves it alone
// otherwise, so an endpoint the SDK took from its own settings (AWS_ENDPOINT_URL_KINESIS, the
// shared config file) still applies when the configuration names none.
func setEndpoint(base **string, cfg config.AWS, service string) {
	if ep := Endpoint(cfg, service); ep != "" {
		*base = aws.String(ep)
	}
}

// Kinesis returns a Kinesis client on awsCfg, at Endpoint(cfg, "kinesis") when set, else where
// the SDK's own settings put it. Its GetRecords responses are decoded by getrecords.Protocol
// (getrecords.DefaultBodies at once unless optFns install it with another count).
func Kinesis(awsCfg aws.Config, cfg config.AWS, optFns ...func(*kinesis.Options)) *kinesis.Client {
	fns := append([]func(*kinesis.Options){func(o *kinesis.Options) {
		setEndpoint(&o.BaseEndpoint, cfg, ServiceKinesis)
	}, getrecords.WithProtocol(getrecords.DefaultBodies)}, optFns...)
	return kinesis.NewFromConfig(awsCfg, fns...)
}

// DynamoDB returns a DynamoDB client on awsCfg, at Endpoint(cfg, "dynamodb") when set.
func DynamoDB(awsCfg aws.Config, cfg config.AWS) *dynamodb.Client {
	return dynamodb.NewFromConfig(awsCfg, func(o *dynamodb.Options) {
		setEndpoint(&o.BaseEndpoint, cfg, ServiceDynamoDB)
	})
}

// S3 returns an S3 client on awsCfg, at Endpoint(cfg, "s3") when set. It addresses buckets
// path-style (http://host/bucket) when aws.s3_use_path_style is true or an S3 endpoint is
// configured (emulators rarely serve bucket subdomains), and virtual-hosted style otherwise. It
// does not print the SDK's notice about responses without a checksum.
func S3(awsCfg aws.Config, cfg config.AWS) *s3.Client {
	return s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		setEndpoint(&o.BaseEndpoint, cfg, ServiceS3)
		o.UsePathStyle = cfg.S3UsePathStyle || Endpoint(cfg, ServiceS3) != ""
		// Emulators send no response checksums; the SDK would print a line for every GetObject.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
}

// SQS returns an SQS client on awsCfg, at Endpoint(cfg, "sqs") when set.
func SQS(awsCfg aws.Config, cfg config.AWS) *sqs.Client {
	return sqs.NewFromConfig(awsCfg, func(o *sqs.Options) {
		setEndpoint(&o.BaseEndpoint, cfg, ServiceSQS)
	})
}

// Firehose returns a Firehose client on awsCfg, at Endpoint(cfg, "firehose") when set.
func Firehose(awsCfg aws.Config, cfg config.AWS) *firehose.Client {
	return firehose.NewFromConfig(awsCfg, func(o *firehose.Options) {
		setEndpoint(&o.BaseEndpoint, cfg, ServiceFirehose)
	})
}

// CloudWatch returns a CloudWatch client on awsCfg, at Endpoint(cfg, "cloudwatch") when set. It
// speaks CloudWatch's query protocol (the one every CloudWatch endpoint, LocalStack's and moto's
// included, serves) rather than the SDK's newer CBOR default.
func CloudWatch(awsCfg aws.Config, cfg config.AWS) *cloudwatch.Client {
	return cloudwatch.NewFromConfig(awsCfg, func(o *cloudwatch.Options) {
		setEndpoint(&o.BaseEndpoint, cfg, ServiceCloudWatch)
		o.Protocol = awsquery.New(cwschemas.GraniteServiceVersion20100801)
	})
}

// SNS returns an SNS client on awsCfg, at Endpoint(cfg, "sns") when set.
func SNS(awsCfg aws.Config, cfg config.AWS) *sns.Client {
	return sns.NewFromConfig(awsCfg, func(o *sns.Options) {
		setEndpoint(&o.BaseEndpoint, cfg, ServiceSNS)
	})
}

// LambdaResponseTimeout bounds the wait for a Lambda Invoke response: a function may run for 15
// minutes, so the shared one-minute response-header timeout cannot apply. The handler timeout
// (processing.handler_timeout) is what normally ends a call.
const LambdaResponseTimeout = 16 * time.Minute

// Lambda returns a Lambda client on awsCfg, at Endpoint(cfg, "lambda") when set, whose requests
// may wait up to LambdaResponseTimeout for their response.
func Lambda(awsCfg aws.Config, cfg config.AWS) *lambda.Client {
	httpClient := awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = DialTimeout }).
		WithTransportOptions(func(t *http.Transport) {
			t.TLSHandshakeTimeout = TLSHandshakeTimeout
			t.ResponseHeaderTimeout = LambdaResponseTimeout
			t.MaxIdleConnsPerHost = MaxIdleConnsPerHost
		})
	return lambda.NewFromConfig(awsCfg, func(o *lambda.Options) {
		setEndpoint(&o.BaseEndpoint, cfg, ServiceLambda)
		o.HTTPClient = httpClient
	})
}
