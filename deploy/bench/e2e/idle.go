package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// DynamoDB on-demand prices in us-east-1 (USD per million request units), for the cost column.
const (
	pricePerMillionWrites = 0.625
	pricePerMillionReads  = 0.125
	secondsPerMonth       = 30 * 24 * 3600
)

// counter is a reverse proxy in front of dynalite that counts requests by operation.
type counter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (c *counter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

func startCounter(target string) (*counter, string, func(), error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, "", nil, err
	}
	c := &counter{counts: map[string]int{}}
	proxy := httputil.NewSingleHostReverseProxy(u)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op := r.Header.Get("X-Amz-Target")
		if i := strings.LastIndexByte(op, '.'); i >= 0 {
			op = op[i+1:]
		}
		c.mu.Lock()
		c.counts[op]++
		c.mu.Unlock()
		proxy.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(ln) }()
	return c, "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}

// procCPU returns a process's CPU time (user + system) and resident memory from /proc.
func procCPU(pid int) (time.Duration, int64, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// Fields after the command name (which may hold spaces) start after the last ')'.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	rssPages, _ := strconv.ParseInt(f[21], 10, 64)
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticksPerSecond, rssPages * int64(os.Getpagesize()), nil
}

// idleBench starts the daemon on an empty stream of each size, waits until it holds every
// shard, and measures its CPU, RSS and DynamoDB requests over window.
func idleBench(sizes string, window time.Duration, bin, doc string) error {
	st, err := connect()
	if err != nil {
		return err
	}
	kinEP, ddbEP, s3EP, kin, ddb, s3c := st.kinEP, st.ddbEP, st.s3EP, st.kin, st.ddb, st.s3
	counts, proxyEP, stop, err := startCounter(ddbEP)
	if err != nil {
		return err
	}
	defer stop()
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "bench-idle-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	stamp := strconv.FormatInt(time.Now().Unix(), 36)
	bucket := "bench-idle-" + stamp
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		return fmt.Errorf("create bucket: %w", err)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "Taken %s (%d cores, %s): the daemon on an empty kinesalite stream (default settings: poll_interval 1s, max_idle_poll_interval 5s, renew_interval 3s, shard_sync_interval 10s), measured over %s once it held every shard. DynamoDB requests are counted by a proxy in front of dynalite. Cost: on-demand, us-east-1, $%.3f per million writes and $%.3f per million reads, one request unit per request (items under 1 KB).\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), runtime.Version(), window, pricePerMillionWrites, pricePerMillionReads)
	b.WriteString("| shards | CPU ms per shard-second | RSS MiB | RSS KiB per shard | DynamoDB requests/s per shard (by operation) | DynamoDB $ per 1,000 shards per month | load average at start |\n")
	b.WriteString("| ---: | ---: | ---: | ---: | --- | ---: | --- |\n")
	for _, field := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(field))
		if err != nil || n <= 0 {
			return fmt.Errorf("-idle %q: shard counts must be positive integers", sizes)
		}
		stream, table := fmt.Sprintf("bench-idle-%s-%d", stamp, n), fmt.Sprintf("bench-idle-%s-%d", stamp, n)
		if err := createStream(ctx, kin, stream, n); err != nil {
			return err
		}
		cfg, err := writeConfig(dir, kinEP, proxyEP, s3EP, daemonConfig{stream: stream, bucket: bucket, table: table, codec: "GZIP", bufferMiB: 5, intervalS: 1})
		if err != nil {
			return err
		}
		load, _ := os.ReadFile("/proc/loadavg")
		cmd := exec.Command(bin, "run", "-c", cfg)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			return err
		}
		held := func() bool {
			ok, err := holdsEvery(ctx, ddb, table, n)
			return ok && err == nil
		}
		deadline := time.Now().Add(10 * time.Minute)
		for !held() {
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				return fmt.Errorf("%d shards: the daemon did not take every lease within 10 minutes", n)
			}
			time.Sleep(time.Second)
		}
		// Let every reader reach its longest idle wait before measuring.
		time.Sleep(15 * time.Second)
		cpu0, _, err := procCPU(cmd.Process.Pid)
		if err != nil {
			return err
		}
		req0 := counts.snapshot()
		time.Sleep(window)
		cpu1, rss, err := procCPU(cmd.Process.Pid)
		if err != nil {
			return err
		}
		req1 := counts.snapshot()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("%d shards: the daemon: %w", n, err)
		}
		shardSeconds := float64(n) * window.Seconds()
		var ops []string
		writes, reads := 0.0, 0.0
		for op, c := range req1 {
			d := float64(c - req0[op])
			if d == 0 {
				continue
			}
			ops = append(ops, fmt.Sprintf("%s %.3f", op, d/shardSeconds))
			switch op {
			case "GetItem", "Scan", "Query", "DescribeTable":
				reads += d
			default:
				writes += d
			}
		}
		sort.Strings(ops)
		cost := (writes*pricePerMillionWrites + reads*pricePerMillionReads) / 1e6 / shardSeconds * 1000 * secondsPerMonth
		loadFields := strings.Fields(string(load))
		row := fmt.Sprintf("| %d | %.3f | %.0f | %.0f | %s | %.0f | %s |\n", n, float64(cpu1-cpu0)/float64(time.Millisecond)/shardSeconds,
			float64(rss)/(1<<20), float64(rss)/1024/float64(n), strings.Join(ops, ", "), cost, strings.Join(loadFields[:3], " "))
		fmt.Print(row)
		b.WriteString(row)
	}
	if len(b.String()) == 0 {
		return errors.New("nothing measured")
	}
	return writeSection(doc, "<!-- bench-idle:begin -->", "<!-- bench-idle:end -->", "Idle shards and scale (`make bench-idle`)", b.String())
}
