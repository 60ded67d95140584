package main

// End-to-end tests of delivery: exactly_once with the real binary on the local stack: whatever
// happens to the workers (kill -9 at random moments, a zombie woken after its lease moved, a
// frozen lease table, a reshard), every record put is in exactly one S3 object, and no object is
// ever written twice (the bucket is versioned: each key must have one version).

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/shardhose/shardhose/internal/testenv"
)

// newExactlyOnceStack is newE2EStackOn with a versioned bucket.
func newExactlyOnceStack(t *testing.T, shards int, kinesalite bool) *e2eStack {
	t.Helper()
	s := newE2EStackOn(t, shards, kinesalite)
	if _, err := s.s3.PutBucketVersioning(t.Context(), &awss3.PutBucketVersioningInput{
		Bucket:                  aws.String(s.bucket),
		VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled},
	}); err != nil {
		t.Fatalf("enable versioning on %s: %v", s.bucket, err)
	}
	return s
}

// overwritten lists the keys of the bucket that have more than one version.
func (s *e2eStack) overwritten(t *testing.T) (keys int, rewritten []string) {
	t.Helper()
	perKey := map[string]int{}
	p := awss3.NewListObjectVersionsPaginator(s.s3, &awss3.ListObjectVersionsInput{Bucket: aws.String(s.bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(t.Context())
		if err != nil {
			t.Fatalf("list object versions of %s: %v", s.bucket, err)
		}
		for _, v := range page.Versions {
			perKey[aws.ToString(v.Key)]++
		}
	}
	for k, n := range perKey {
		if n > 1 {
			rewritten = append(rewritten, fmt.Sprintf("%s (%d versions)", k, n))
		}
	}
	return len(perKey), rewritten
}

// checkExactlyOnce waits until every sent record is in S3, then requires each record of the
// stream to be there once and every object to have been written once. Records are counted as
// the stream holds them: one PutRecords round can be in the stream twice, under other sequence
// numbers (a call sent again after its answer was lost stores its records again), and each
// copy is a record of its own that must be in S3 once.
func (s *e2eStack) checkExactlyOnce(t *testing.T, sent []sentRecord, within time.Duration) {
	t.Helper()
	s.waitAllDelivered(t, sent, within)
	objs := s.objects(t)
	counts := deliveredCounts(objs)
	n, sample := missingSent(sent, counts)
	inStream := s.streamCopies(t)
	repeated := 0
	for r, c := range inStream {
		if len(c) > 1 {
			repeated += len(c) - 1
			if repeated <= 3 {
				t.Logf("the stream holds %s/%d %d times (a repeated put): %v", r.K, r.N, len(c), c)
			}
		}
	}
	dups, short, ex := compareCopies(counts, inStream)
	n += short
	keys, rewritten := s.overwritten(t)
	t.Logf("%d records put (%d more copies in the stream: repeated puts); in S3: %d distinct in %d objects, %d missing, %d duplicates; %d keys written more than once",
		len(sent), repeated, len(counts), keys, n, dups, len(rewritten))
	if n > 0 {
		t.Errorf("%d records missing, e.g. %v %v", n, sample, ex)
	}
	if dups > 0 {
		t.Errorf("%d duplicates, e.g. %v", dups, ex)
		// Name the objects that hold the duplicated records: where a record is twice says
		// which runs of which shard wrote it.
		holders := map[string]int{}
		for _, o := range objs {
			for _, r := range o.records() {
				if counts[r] > max(1, len(inStream[r])) {
					holders[o.key]++
				}
			}
		}
		for k, n := range holders {
			t.Logf("object %s holds %d duplicated records", k, n)
		}
	}
	if len(rewritten) > 0 {
		t.Errorf("objects overwritten: %v", rewritten)
	}
	for _, o := range objs {
		if !strings.Contains(o.key, "-shardId-") {
			t.Errorf("object %s is not named after a shard", o.key)
			break
		}
	}
}

// compareCopies compares the copies in S3 (counts) of each record with the copies the stream
// holds of it (inStream; a record put once need not be listed): extra counts the copies in S3
// beyond those, short the copies of a record the stream holds more than once that S3 lacks (a
// record missing altogether is missingSent's), and sample describes a few of either.
func compareCopies(counts map[keyed]int, inStream map[keyed][]string) (extra, short int, sample []string) {
	for r, c := range counts {
		if n := c - max(1, len(inStream[r])); n > 0 {
			extra += n
			if len(sample) < 5 {
				sample = append(sample, fmt.Sprintf("%s/%d ×%d (%d in the stream)", r.K, r.N, c, len(inStream[r])))
			}
		}
	}
	for r, copies := range inStream {
		if c := counts[r]; c > 0 && c < len(copies) {
			short += len(copies) - c
			if len(sample) < 5 {
				sample = append(sample, fmt.Sprintf("%s/%d ×%d (%d in the stream)", r.K, r.N, c, len(copies)))
			}
		}
	}
	return extra, short, sample
}

// A put the stream's client repeated leaves two records with the same data; each belongs in S3
// once, so two copies in S3 are neither a duplicate nor a loss, while a third copy, or a second
// copy of a record the stream holds once, is a duplicate, and one copy of the two a loss.
func TestExactlyOnceCountsTheStreamsCopies(t *testing.T) {
	inStream := map[keyed][]string{
		{"key-02", 109}: {"shardId-000000000002/4968", "shardId-000000000002/4969"},
		{"key-03", 109}: {"shardId-000000000001/4970"},
	}
	for _, tc := range []struct {
		name             string
		counts           map[keyed]int
		wantExtra, short int
	}{
		{"each stream record once", map[keyed]int{{"key-02", 109}: 2, {"key-03", 109}: 1, {"key-04", 1}: 1}, 0, 0},
		{"a record the stream holds once, twice", map[keyed]int{{"key-02", 109}: 2, {"key-03", 109}: 2}, 1, 0},
		{"a repeated put, three times", map[keyed]int{{"key-02", 109}: 3}, 1, 0},
		{"a repeated put, once", map[keyed]int{{"key-02", 109}: 1, {"key-03", 109}: 1}, 0, 1},
		{"a record not listed, twice", map[keyed]int{{"key-04", 1}: 2}, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			extra, short, sample := compareCopies(tc.counts, inStream)
			if extra != tc.wantExtra || short != tc.short {
				t.Errorf("compareCopies = %d extra, %d short (%v), want %d, %d", extra, short, sample, tc.wantExtra, tc.short)
			}
		})
	}
}

// streamCopies reads every shard of the stream from its start and returns the sequence numbers
// under which it holds each producer record.
func (s *e2eStack) streamCopies(t *testing.T) map[keyed][]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	out := map[keyed][]string{}
	in := &kinesis.ListShardsInput{StreamName: aws.String(s.stream)}
	for in != nil {
		page, err := s.kin.ListShards(ctx, in)
		if err != nil {
			t.Fatalf("list the shards of %s: %v", s.stream, err)
		}
		in = nil
		if page.NextToken != nil {
			in = &kinesis.ListShardsInput{NextToken: page.NextToken}
		}
		for _, sh := range page.Shards {
			it, err := s.kin.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(s.stream), ShardId: sh.ShardId, ShardIteratorType: ktypes.ShardIteratorTypeTrimHorizon})
			if err != nil {
				t.Fatalf("read %s: %v", aws.ToString(sh.ShardId), err)
			}
			// Until the shard ends, or a read finds nothing and nothing is behind.
			for iter := it.ShardIterator; iter != nil; {
				got, err := s.kin.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
				if err != nil {
					t.Fatalf("read %s: %v", aws.ToString(sh.ShardId), err)
				}
				for _, r := range got.Records {
					var k keyed
					if json.Unmarshal(r.Data, &k) == nil && k.K != "" {
						out[k] = append(out[k], aws.ToString(sh.ShardId)+"/"+aws.ToString(r.SequenceNumber))
					}
				}
				if len(got.Records) == 0 && aws.ToInt64(got.MillisBehindLatest) == 0 {
					break
				}
				iter = got.NextShardIterator
			}
		}
	}
	return out
}

// tookLeases counts the leases a worker's log says it took.
func (d *daemon) tookLeases() int { return len(d.find("took lease; reading shard", "")) }

// partitionedS3 turns dynamic partitioning on for the producer's records: three partitions,
// by the record's counter modulo 3.
const partitionedS3 = `      prefix: "part=!{partitionKeyFromQuery:p}/"
      error_output_prefix: "errors/!{firehose:error-output-type}/"
      dynamic_partitioning: {enabled: true, queries: {p: ".n % 3"}}`

// TestExactlyOnceKill9AtTenRandomMoments puts at least 20,000 records into 4 shards while a
// worker is killed with SIGKILL 10 times, each at a random moment after it wrote its first
// object, and restarted under a new id; then one last worker delivers the rest. Every record
// must be in S3 exactly once; with dynamic partitioning, in its partition's objects.
func TestExactlyOnceKill9AtTenRandomMoments(t *testing.T) {
	for _, tc := range []struct{ name, s3 string }{{"plain", ""}, {"partitioned", partitionedS3}} {
		t.Run(tc.name, func(t *testing.T) {
			s := newExactlyOnceStack(t, 4, true)
			cfg := s.fleetConfig(t, fleetOptions{delivery: "exactly_once", batchSize: 200, s3Extra: tc.s3})
			kill9AtTenRandomMoments(t, s, cfg)
			if tc.s3 == "" {
				return
			}
			for _, o := range s.objects(t) {
				for _, r := range o.records() {
					if want := fmt.Sprintf("part=%d/", r.N%3); !strings.HasPrefix(o.key, want) {
						t.Fatalf("record %s/%d is in %s, want under %s", r.K, r.N, o.key, want)
					}
				}
			}
		})
	}
}

func kill9AtTenRandomMoments(t *testing.T, s *e2eStack, cfg string) {
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	t.Logf("kill moments drawn with seed %d", seed)

	const total = 20000
	prod := s.startProducer(t, 200, 350*time.Millisecond) // 200 records a round: ~570 a second
	for i := range 10 {
		name := fmt.Sprintf("k9-%d", i)
		d := startWorker(t, cfg, name)
		waitFor(t, 30*time.Second, name+" holds the 4 leases and wrote an object", func() (bool, string) {
			n := len(d.find("s3 object written", ""))
			return d.tookLeases() >= 4 && n > 0, fmt.Sprintf("%d leases taken, %d objects written", d.tookLeases(), n)
		})
		// Objects go up about every second per shard and checkpoints follow within 250 ms:
		// a moment drawn from two seconds falls anywhere in that cycle.
		wait := time.Duration(rng.Int64N(int64(2 * time.Second)))
		time.Sleep(wait) // the random moment itself, not a wait for a condition
		if err := d.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		d.waitExit(10 * time.Second)
		t.Logf("kill %d: %s after its first object; it wrote %d objects and %d checkpoints; %d records put so far",
			i+1, wait.Round(time.Millisecond), len(d.find("s3 object written", "")), len(d.find("checkpointed", "")), len(prod.records()))
	}
	last := startWorker(t, cfg, "k9-last")
	waitFor(t, 2*time.Minute, fmt.Sprintf("%d records put", total), func() (bool, string) {
		n := len(prod.records())
		return n >= total, fmt.Sprintf("%d put", n)
	})
	sent := prod.halt(t)
	s.checkExactlyOnce(t, sent, 2*time.Minute)
	last.stop(t, "k9-last")
}

// TestExactlyOnceZombieWritesNothing stops a worker with SIGSTOP past its lease, lets a second
// worker take its shards, then wakes it with SIGCONT: the zombie must write no object after it
// wakes (its lease is gone; a conditional write it had under way is refused), and every record
// must be in S3 once.
func TestExactlyOnceZombieWritesNothing(t *testing.T) {
	s := newExactlyOnceStack(t, 4, true)
	cfg := s.fleetConfig(t, fleetOptions{delivery: "exactly_once"})
	prod := s.startProducer(t, 40, 100*time.Millisecond)
	zombie := startWorker(t, cfg, "zombie")
	s.waitBalanced(t, 30*time.Second, []string{"zombie"}, []int{4})
	waitFor(t, 20*time.Second, "objects written by the first worker", func() (bool, string) {
		n := len(zombie.find("s3 object written", ""))
		return n >= 8, fmt.Sprintf("%d objects", n)
	})

	zombie.signal(t, syscall.SIGSTOP)
	stopped := time.Now()
	owner := startWorker(t, cfg, "owner")
	s.waitBalanced(t, 30*time.Second, []string{"owner"}, []int{4})
	waitFor(t, 20*time.Second, "objects written by the new owner", func() (bool, string) {
		n := len(owner.find("s3 object written", ""))
		return n >= 8, fmt.Sprintf("%d objects", n)
	})
	zombie.signal(t, syscall.SIGCONT)
	woke := time.Now()
	t.Logf("zombie stopped for %s", secs(woke.Sub(stopped)))
	waitFor(t, 20*time.Second, "the zombie stops its 4 shards", func() (bool, string) {
		n := len(zombie.find("stopped reading shard", ""))
		return n >= 4, fmt.Sprintf("%d stopped", n)
	})

	sent := prod.halt(t)
	s.checkExactlyOnce(t, sent, time.Minute)
	owner.stop(t, "owner")
	zombie.stop(t, "zombie")
	for _, l := range zombie.find("s3 object written", "") {
		if l.Time.After(woke) {
			t.Errorf("the zombie wrote %s after it woke", l.Key)
		}
	}
	t.Logf("after waking the zombie gave up %d objects and had %d conditional writes refused",
		len(zombie.find("the shard's lease is no longer held: object not written; the lease's next owner delivers its records", "")),
		len(zombie.find("object exists already (written by an earlier owner of the shard, or one racing this worker); continuing after its last record", "")))
}

// dynalite is a DynamoDB server of one test's own, which the test can freeze.
type dynalite struct {
	endpoint string
	cmd      *exec.Cmd
}

func startDynalite(t *testing.T) *dynalite {
	t.Helper()
	cli, err := filepath.Abs("../../deploy/local/node_modules/dynalite/cli.js")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cli); err != nil {
		t.Fatalf("dynalite is not installed (make local-up installs it): %v", err)
	}
	port := freePort(t)
	d := &dynalite{endpoint: fmt.Sprintf("http://127.0.0.1:%d", port)}
	guard, err := filepath.Abs("../../deploy/local/lib/abort-guard.js")
	if err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command("node", "--require", guard, cli, "--host", "127.0.0.1", "--port", fmt.Sprint(port), "--createTableMs", "50")
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start dynalite: %v", err)
	}
	t.Cleanup(func() {
		_ = d.cmd.Process.Kill()
		_ = d.cmd.Wait()
	})
	waitFor(t, 10*time.Second, "dynalite answers", func() (bool, string) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err != nil {
			return false, err.Error()
		}
		c.Close()
		return true, ""
	})
	return d
}

// TestExactlyOnceThirtySecondLeaseTableFreeze freezes the lease table (SIGSTOP on a private
// dynalite) for 30 s while two workers deliver: leases cannot be renewed, checkpoints cannot be
// written, and leases move once it thaws. Every record must be in S3 once.
func TestExactlyOnceThirtySecondLeaseTableFreeze(t *testing.T) {
	s := newExactlyOnceStack(t, 4, true)
	ddb := startDynalite(t)
	s.ddb = testenv.DynamoDBClient(t, testenv.Env{DynamoDB: ddb.endpoint})
	cfg := s.fleetConfig(t, fleetOptions{delivery: "exactly_once", dynamoDBEndpoint: ddb.endpoint})
	prod := s.startProducer(t, 40, 100*time.Millisecond)
	workers := []string{"fz-a", "fz-b"}
	ds := map[string]*daemon{}
	for _, w := range workers {
		ds[w] = startWorker(t, cfg, w)
	}
	s.waitBalanced(t, 30*time.Second, workers, []int{2, 2})
	s.waitCheckpointed(t, 4)

	if err := ddb.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozen := time.Now()
	time.Sleep(30 * time.Second) // the outage itself
	if err := ddb.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	t.Logf("lease table frozen for %s", secs(time.Since(frozen)))
	s.waitBalanced(t, 30*time.Second, workers, []int{2, 2})

	sent := prod.halt(t)
	s.checkExactlyOnce(t, sent, 90*time.Second)
	for _, w := range workers {
		ds[w].stop(t, w)
	}
}

// TestExactlyOnceReshardMidRun splits one of two shards while two workers deliver and kills one
// of them with SIGKILL just after: the parent is finished by the survivor (or the replacement)
// from its delivered position, the children start from their beginning, and every record must be
// in S3 once.
func TestExactlyOnceReshardMidRun(t *testing.T) {
	s := newExactlyOnceStack(t, 2, false) // kinesis-local: it reshards properly
	cfg := s.fleetConfig(t, fleetOptions{delivery: "exactly_once", batchSize: 20})
	prod := s.startProducer(t, 24, 200*time.Millisecond)
	workers := []string{"rs-a", "rs-b"}
	ds := map[string]*daemon{}
	for _, w := range workers {
		ds[w] = startWorker(t, cfg, w)
	}
	s.waitBalanced(t, 30*time.Second, workers, []int{1, 1})
	s.waitCheckpointed(t, 2)

	open := openShardsByHashKey(t, s)
	parent := s.splitInHalf(t, open[0])
	leases, err := s.listLeases(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	victim := leases[parent].Owner
	if err := ds[victim].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	ds[victim].waitExit(10 * time.Second)
	t.Logf("split %s and killed its owner %s", parent, victim)
	ds[victim] = startWorker(t, cfg, victim+"-2")

	waitFor(t, 60*time.Second, "the parent ended and both children checkpointed", func() (bool, string) {
		leases, err := s.listLeases(t.Context())
		if err != nil {
			return false, err.Error()
		}
		if l, ok := leases[parent]; ok && !l.ShardEnd {
			return false, parent + " not at SHARD_END"
		}
		children := 0
		for _, l := range leases {
			if len(l.ParentShardIDs) > 0 && !l.Checkpoint.IsZero() {
				children++
			}
		}
		return children == 2, fmt.Sprintf("%d children checkpointed", children)
	})

	sent := prod.halt(t)
	s.checkExactlyOnce(t, sent, time.Minute)
	for _, d := range ds {
		d.signal(t, syscall.SIGTERM)
		d.waitExit(30 * time.Second)
	}
}
