// Command floor is the baseline of `make bench-e2e`: a plain GetRecords loop over every shard of
// a stream, from TRIM_HORIZON, that stops once it has read -records records. It does nothing with
// the records but, with -codec, compress their data (to nowhere), so its CPU is the least any
// consumer of the same records pays. -decoder picks the SDK's response decoder,
// consumer/getrecords's JSON decoder, or its CBOR protocol (GetRecords in CBOR).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"

	"github.com/shardhose/shardhose/consumer/getrecords"
)

func main() {
	endpoint := flag.String("endpoint", "", "Kinesis endpoint URL")
	stream := flag.String("stream", "", "stream name")
	want := flag.Int64("records", 0, "stop after reading this many records")
	decoder := flag.String("decoder", "sdk", "response decoder: sdk, getrecords (JSON) or cbor (GetRecords in CBOR)")
	codec := flag.String("codec", "none", "compress the data read: none, gzip, zstd or snappy")
	flag.Parse()
	if err := run(*endpoint, *stream, *want, *decoder, *codec); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

func run(endpoint, stream string, want int64, decoder, codec string) error {
	if endpoint == "" || stream == "" || want <= 0 {
		return errors.New("-endpoint, -stream and a positive -records are required")
	}
	opts := []func(*kinesis.Options){}
	switch decoder {
	case "sdk":
	case "getrecords":
		opts = append(opts, getrecords.WithProtocol(getrecords.DefaultBodies))
	case "cbor":
		opts = append(opts, getrecords.WithCBORProtocol(getrecords.DefaultBodies))
	default:
		return fmt.Errorf("-decoder %q: allowed sdk, getrecords or cbor", decoder)
	}
	newWriter, err := compressor(codec)
	if err != nil {
		return err
	}
	client := kinesis.New(kinesis.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
	}, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	shards, err := client.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		return fmt.Errorf("list shards: %w", err)
	}
	var read atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, len(shards.Shards))
	start := time.Now()
	for _, sh := range shards.Shards {
		wg.Go(func() {
			if err := readShard(ctx, client, stream, aws.ToString(sh.ShardId), want, &read, newWriter); err != nil {
				errs <- err
				cancel()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	fmt.Printf("read %d records in %s\n", read.Load(), time.Since(start).Round(time.Millisecond))
	return nil
}

func readShard(ctx context.Context, client *kinesis.Client, stream, shard string, want int64, read *atomic.Int64, newWriter func() io.WriteCloser) error {
	it, err := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName: aws.String(stream), ShardId: aws.String(shard), ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
	})
	if err != nil {
		return fmt.Errorf("shard iterator for %s: %w", shard, err)
	}
	iterator := it.ShardIterator
	w := newWriter()
	defer w.Close()
	for read.Load() < want && iterator != nil {
		out, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iterator, Limit: aws.Int32(10000)})
		if err != nil {
			return fmt.Errorf("get records from %s: %w", shard, err)
		}
		for _, r := range out.Records {
			if _, err := w.Write(r.Data); err != nil {
				return err
			}
		}
		read.Add(int64(len(out.Records)))
		iterator = out.NextShardIterator
		wait := time.Second
		if len(out.Records) > 0 {
			wait = 200 * time.Millisecond // Kinesis's 5 reads per shard per second
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
	return nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

func compressor(codec string) (func() io.WriteCloser, error) {
	switch codec {
	case "none":
		return func() io.WriteCloser { return nopCloser{io.Discard} }, nil
	case "gzip":
		return func() io.WriteCloser { return gzip.NewWriter(io.Discard) }, nil
	case "zstd":
		return func() io.WriteCloser {
			w, _ := zstd.NewWriter(io.Discard, zstd.WithWindowSize(1<<20))
			return w
		}, nil
	case "snappy":
		return func() io.WriteCloser { return s2.NewWriter(io.Discard, s2.WriterSnappyCompat()) }, nil
	}
	return nil, fmt.Errorf("-codec %q: allowed none, gzip, zstd or snappy", codec)
}
