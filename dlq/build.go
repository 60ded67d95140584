package dlq

import (
	"context"
	"fmt"

	"github.com/shardhose/shardhose/config"
)

// Clients are the AWS clients Build may need; only the ones the configured type uses must be
// set: SQS for sqs, SNS for sns, Kinesis for kinesis, and S3 for s3 and for the overflow of sqs,
// sns and kinesis. The SDK's *sqs.Client, *sns.Client, *s3.Client and *kinesis.Client fit.
type Clients struct {
	SQS     SQSAPI
	SNS     SNSAPI
	S3      S3API
	Kinesis KinesisAPI
}

// Build returns the destination cfg describes, or nil (and no error) when cfg.Type is "" (none
// configured). It does no I/O (ctx is for destinations that will need some to start); call Check on the result (every destination implements Checker)
// to verify at start-up that the queue, topic, bucket, stream or file is usable. cfg is expected
// to have passed config validation; Build still refuses a missing client or required value.
func Build(ctx context.Context, cfg config.DeadLetter, clients Clients) (Destination, error) {
	overflow := func() (Overflow, error) {
		if clients.S3 == nil {
			return Overflow{}, fmt.Errorf("dead_letter.overflow: an S3 client is required")
		}
		return Overflow{Client: clients.S3, Bucket: cfg.Overflow.Bucket, Prefix: cfg.Overflow.Prefix}, nil
	}
	var (
		d   Destination
		err error
	)
	switch cfg.Type {
	case "":
		return nil, nil
	case "sqs":
		if clients.SQS == nil {
			return nil, fmt.Errorf("dead_letter.type sqs: an SQS client is required")
		}
		o, oerr := overflow()
		if oerr != nil {
			return nil, oerr
		}
		d, err = NewSQS(clients.SQS, cfg.SQS.QueueURL, o)
	case "sns":
		if clients.SNS == nil {
			return nil, fmt.Errorf("dead_letter.type sns: an SNS client is required")
		}
		o, oerr := overflow()
		if oerr != nil {
			return nil, oerr
		}
		d, err = NewSNS(clients.SNS, cfg.SNS.TopicARN, o)
	case "kinesis":
		if clients.Kinesis == nil {
			return nil, fmt.Errorf("dead_letter.type kinesis: a Kinesis client is required")
		}
		o, oerr := overflow()
		if oerr != nil {
			return nil, oerr
		}
		d, err = NewKinesis(clients.Kinesis, cfg.Kinesis.Stream, o)
	case "s3":
		if clients.S3 == nil {
			return nil, fmt.Errorf("dead_letter.type s3: an S3 client is required")
		}
		d, err = NewS3(clients.S3, cfg.S3.Bucket, cfg.S3.Prefix)
	case "file":
		d, err = NewFile(cfg.File.Path)
	default:
		return nil, fmt.Errorf("dead_letter.type %q: use sqs, sns, s3, kinesis, file, or \"\" for none", cfg.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("dead_letter: %w", err)
	}
	return d, nil
}
