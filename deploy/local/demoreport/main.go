// Command demoreport waits until the demo's records are in S3 and its dead letters in the queue,
// and prints what landed where: every object of the configured S3 sinks with its record count,
// and the dead-letter queue's message count. It reads the same config file as shardhose.
//
//	demoreport -c configs/local.yaml -count               print how many records the buckets hold
//	demoreport -c configs/local.yaml -dead-letters        print how many messages the dead-letter queue holds
//	demoreport -c configs/local.yaml -put-poison          put one record that is not JSON into the stream
//	demoreport -c configs/local.yaml -wait N [-wait-dead-letters M] -timeout 2m
//	                                                      wait until they hold N records (and M dead letters), then list
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/klauspost/compress/gzip"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/internal/awsclient"
	"github.com/shardhose/shardhose/internal/clock"
)

type object struct {
	bucket, key string
	records     int
	size        int64
}

func main() {
	cfgPath := flag.String("c", "configs/local.yaml", "shardhose config file")
	count := flag.Bool("count", false, "print the number of records the sinks' buckets hold and exit")
	deadLetters := flag.Bool("dead-letters", false, "print the number of messages in the dead-letter queue and exit")
	putPoison := flag.Bool("put-poison", false, "put one record that is not JSON into the stream and exit")
	wait := flag.Int("wait", 0, "wait until the buckets hold at least this many records")
	waitDead := flag.Int("wait-dead-letters", 0, "wait until the dead-letter queue holds at least this many messages")
	timeout := flag.Duration("timeout", 2*time.Minute, "how long to wait")
	flag.Parse()

	cfg, err := config.Load(config.LoadOptions{Path: *cfgPath})
	if err != nil {
		fail("%s: %v", *cfgPath, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout+30*time.Second)
	defer cancel()
	awsCfg, err := awsclient.Load(ctx, cfg.AWS, nil)
	if err != nil {
		fail("aws configuration: %v", err)
	}
	client := awsclient.S3(awsCfg, cfg.AWS)
	queue := awsclient.SQS(awsCfg, cfg.AWS)

	switch {
	case *count:
		objs, err := scan(ctx, client, cfg)
		if err != nil {
			fail("%v", err)
		}
		fmt.Println(total(objs))
		return
	case *deadLetters:
		n, err := queueDepth(ctx, queue, cfg)
		if err != nil {
			fail("%v", err)
		}
		fmt.Println(n)
		return
	case *putPoison:
		if err := putPoisonRecord(ctx, awsclient.Kinesis(awsCfg, cfg.AWS), cfg); err != nil {
			fail("%v", err)
		}
		return
	}
	deadline := time.Now().Add(*timeout)
	var objs []object
	var dead int
	for {
		objs, err = scan(ctx, client, cfg)
		if err != nil {
			fail("%v", err)
		}
		if dead, err = queueDepth(ctx, queue, cfg); err != nil {
			fail("%v", err)
		}
		if total(objs) >= *wait && dead >= *waitDead {
			break
		}
		if time.Now().After(deadline) {
			fail("within %v only %d of %d records arrived in S3 and %d of %d dead letters in the queue", *timeout, total(objs), *wait, dead, *waitDead)
		}
		if err := clock.Sleep(ctx, clock.Real(), 500*time.Millisecond); err != nil {
			fail("%v", err)
		}
	}
	sort.Slice(objs, func(i, j int) bool { return objs[i].key < objs[j].key })
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BUCKET\tKEY\tRECORDS\tBYTES")
	for _, o := range objs {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", o.bucket, o.key, o.records, o.size)
	}
	if err := tw.Flush(); err != nil {
		fail("%v", err)
	}
	fmt.Printf("%d records in %d objects\n", total(objs), len(objs))
	if q := cfg.DeadLetter.SQS.QueueURL; cfg.DeadLetter.Type == "sqs" {
		fmt.Printf("%d dead letter(s) in the queue %s\n", dead, q)
	}
}

// queueDepth is the number of messages in the configured SQS dead-letter queue (0 without one).
func queueDepth(ctx context.Context, c *sqs.Client, cfg config.Config) (int, error) {
	if cfg.DeadLetter.Type != "sqs" {
		return 0, nil
	}
	out, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(cfg.DeadLetter.SQS.QueueURL),
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	if err != nil {
		return 0, fmt.Errorf("dead-letter queue %s: %w", cfg.DeadLetter.SQS.QueueURL, err)
	}
	n := 0
	for _, v := range out.Attributes {
		k, err := strconv.Atoi(v)
		if err != nil {
			return 0, fmt.Errorf("dead-letter queue %s: attribute %q is not a number", cfg.DeadLetter.SQS.QueueURL, v)
		}
		n += k
	}
	return n, nil
}

// putPoisonRecord puts one record the json handler refuses.
func putPoisonRecord(ctx context.Context, c *kinesis.Client, cfg config.Config) error {
	data := fmt.Sprintf(`{"event_id":"poison-%d", "event_type": this is not JSON`, time.Now().Unix())
	out, err := c.PutRecord(ctx, &kinesis.PutRecordInput{
		StreamName: aws.String(cfg.Stream.StreamName()), PartitionKey: aws.String("poison"), Data: []byte(data),
	})
	if err != nil {
		return fmt.Errorf("put the poison record into %s: %w", cfg.Stream.StreamName(), err)
	}
	fmt.Printf("put %s into %s (sequence %s)\n", data, aws.ToString(out.ShardId), aws.ToString(out.SequenceNumber))
	return nil
}

func total(objs []object) int {
	n := 0
	for _, o := range objs {
		n += o.records
	}
	return n
}

// scan reads every object of every S3 sink's bucket and counts its newline-delimited records.
func scan(ctx context.Context, c *awss3.Client, cfg config.Config) ([]object, error) {
	var out []object
	for _, s := range cfg.Sinks {
		if s.Type != "s3" || s.S3 == nil {
			continue
		}
		p := awss3.NewListObjectsV2Paginator(c, &awss3.ListObjectsV2Input{Bucket: aws.String(s.S3.Bucket)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("list bucket %s: %w", s.S3.Bucket, err)
			}
			for _, o := range page.Contents {
				if d := cfg.DeadLetter.Overflow; d.Bucket == s.S3.Bucket && d.Prefix != "" && strings.HasPrefix(aws.ToString(o.Key), d.Prefix) {
					continue // records of dead letters, not delivered ones
				}
				n, err := countRecords(ctx, c, s.S3.Bucket, aws.ToString(o.Key))
				if err != nil {
					return nil, err
				}
				out = append(out, object{bucket: s.S3.Bucket, key: aws.ToString(o.Key), records: n, size: aws.ToInt64(o.Size)})
			}
		}
	}
	return out, nil
}

func countRecords(ctx context.Context, c *awss3.Client, bucket, key string) (int, error) {
	obj, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		return 0, fmt.Errorf("get s3://%s/%s: %w", bucket, key, err)
	}
	defer obj.Body.Close()
	body, err := io.ReadAll(obj.Body)
	if err != nil {
		return 0, fmt.Errorf("read s3://%s/%s: %w", bucket, key, err)
	}
	if strings.HasSuffix(key, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return 0, fmt.Errorf("gunzip s3://%s/%s: %w", bucket, key, err)
		}
		if body, err = io.ReadAll(zr); err != nil {
			return 0, fmt.Errorf("gunzip s3://%s/%s: %w", bucket, key, err)
		}
	}
	return bytes.Count(body, []byte("\n")), nil
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "demoreport: "+format+"\n", args...)
	os.Exit(1)
}
