// Command demoreport waits until the demo's records are in S3 and prints what landed where: every
// object of the configured S3 sinks with its record count. It reads the same config file as
// shardhose.
//
//	demoreport -c configs/local.yaml -count            print how many records the buckets hold
//	demoreport -c configs/local.yaml -wait N -timeout 2m  wait until they hold N records, then list
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
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
	wait := flag.Int("wait", 0, "wait until the buckets hold at least this many records")
	timeout := flag.Duration("timeout", 2*time.Minute, "how long to wait")
	flag.Parse()

	cfg, err := config.Load(config.LoadOptions{Path: *cfgPath})
	if err != nil {
		fail("%s: %v", *cfgPath, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout+30*time.Second)
	defer cancel()
	awsCfg, err := awsclient.Load(ctx, cfg.AWS)
	if err != nil {
		fail("aws configuration: %v", err)
	}
	client := awsclient.S3(awsCfg, cfg.AWS)

	if *count {
		objs, err := scan(ctx, client, cfg)
		if err != nil {
			fail("%v", err)
		}
		fmt.Println(total(objs))
		return
	}
	deadline := time.Now().Add(*timeout)
	var objs []object
	for {
		objs, err = scan(ctx, client, cfg)
		if err != nil {
			fail("%v", err)
		}
		if total(objs) >= *wait {
			break
		}
		if time.Now().After(deadline) {
			fail("only %d of %d records arrived in S3 within %v", total(objs), *wait, *timeout)
		}
		if err := clock.Sleep(ctx, clock.Real(), 500*time.Millisecond); err != nil {
			fail("%v", err)
		}
	}
	sort.Slice(objs, func(i, j int) bool { return objs[i].key < objs[j].key })
	fmt.Printf("%-12s %-80s %8s %9s\n", "BUCKET", "KEY", "RECORDS", "BYTES")
	for _, o := range objs {
		fmt.Printf("%-12s %-80s %8d %9d\n", o.bucket, o.key, o.records, o.size)
	}
	fmt.Printf("%d records in %d objects\n", total(objs), len(objs))
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
