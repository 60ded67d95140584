// Package iampolicy derives the least-privilege IAM policy for one shardhose configuration: the
// actions the daemon calls, each on the resources that configuration names and nothing else.
//
// The rule it follows is that every AWS operation `shardhose run` performs for a configuration is
// allowed by For's policy for that configuration, and nothing more: read the source stream, keep
// the lease table (create it only when leases.create_table allows), write each sink's destination
// and backup, each dead-letter destination and its overflow bucket, the processing error output,
// invoke the processing functions, and publish metrics when CloudWatch publishing is on. A test
// in cmd/shardhose records the operations of a real run and checks each against the policy.
//
// The commands that read dead letters back (`shardhose dlq inspect|replay`) need more (receive
// and delete messages, read objects); they run with an operator's credentials, not the daemon's.
package iampolicy

import (
	"cmp"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"

	"github.com/shardhose/shardhose/config"
)

// Policy is an IAM policy document.
type Policy struct {
	Version   string      `json:"Version"`
	Statement []Statement `json:"Statement"`
}

// Statement allows Action on Resource, under Condition when it has one.
type Statement struct {
	Sid      string   `json:"Sid"`
	Effect   string   `json:"Effect"`
	Action   []string `json:"Action"`
	Resource []string `json:"Resource"`
	// Condition maps an operator to keys and values, e.g. StringEquals: {cloudwatch:namespace: shardhose}.
	Condition map[string]map[string]string `json:"Condition,omitempty"`
}

// Options fill in what the configuration may not say.
type Options struct {
	// Account is the AWS account id in ARNs the configuration gives only by name (the stream,
	// the lease table, a delivery stream, a function). Empty: taken from stream.arn when set,
	// else "*" (any account), which Warnings reports.
	Account string
	// Partition is aws, aws-cn or aws-us-gov; empty: from stream.arn, else aws.
	Partition string
}

// Result is the policy and what the caller should know about it.
type Result struct {
	Policy Policy
	// Warnings say where the policy is wider than it could be, and why.
	Warnings []string
}

// Action lists: what each part of the daemon calls. Keep them in step with the calls; the
// recorded-run test fails when a call is missing here.
var (
	streamRead = []string{"kinesis:DescribeStreamSummary", "kinesis:ListShards", "kinesis:GetShardIterator", "kinesis:GetRecords"}
	leaseTable = []string{"dynamodb:DescribeTable", "dynamodb:Scan", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
	// S3 buckets: HeadBucket needs ListBucket; a multipart upload needs PutObject (create,
	// upload part, complete) and AbortMultipartUpload.
	bucketCheck = []string{"s3:ListBucket"}
	objectWrite = []string{"s3:PutObject", "s3:AbortMultipartUpload"}
	// An exactly-once S3 sink reads back the metadata of the objects it wrote (HeadObject).
	objectRead   = []string{"s3:GetObject"}
	firehosePut  = []string{"firehose:DescribeDeliveryStream", "firehose:PutRecordBatch"}
	sqsSend      = []string{"sqs:GetQueueAttributes", "sqs:SendMessage"}
	snsPublish   = []string{"sns:GetTopicAttributes", "sns:Publish"}
	kinesisPut   = []string{"kinesis:DescribeStreamSummary", "kinesis:PutRecord"}
	lambdaInvoke = []string{"lambda:InvokeFunction"}
)

// builder collects statements and merges those with the same actions.
type builder struct {
	cfg       config.Config
	partition string
	account   string
	region    string
	stmts     []Statement
	warnings  []string
	// objects maps a bucket to the key prefixes written in it ("" = the whole bucket);
	// reads, to those whose objects are also read back.
	objects map[string][]string
	reads   map[string][]string
}

// For returns the policy for cfg, which should have passed config.Validate.
func For(cfg config.Config, o Options) (Result, error) {
	b := &builder{cfg: cfg, region: cfg.AWS.Region, partition: o.Partition, account: o.Account, objects: map[string][]string{}, reads: map[string][]string{}}
	if arn, err := parseARN(cfg.Stream.ARN); err == nil {
		b.partition = cmp.Or(b.partition, arn.partition)
		b.account = cmp.Or(b.account, arn.account)
		b.region = cmp.Or(arn.region, b.region)
	} else if cfg.Stream.ARN != "" {
		return Result{}, fmt.Errorf("stream.arn %q: %w", cfg.Stream.ARN, err)
	}
	b.partition = cmp.Or(b.partition, "aws")
	if b.account == "" {
		b.account = "*"
		b.warnings = append(b.warnings, "the account id is not known (no stream.arn, no --account): ARNs built from names match any account (*)")
	}

	b.add("ReadSourceStream", streamRead, b.streamARN(cfg.Stream.StreamName(), cfg.Stream.ARN))
	table := b.arn("dynamodb", "table/"+cfg.Leases.Table)
	b.add("LeaseTable", leaseTable, table)
	if cfg.Leases.CreateTable {
		b.add("CreateLeaseTable", []string{"dynamodb:CreateTable"}, table)
	}
	for _, s := range cfg.Sinks {
		if err := b.sink(s); err != nil {
			return Result{}, fmt.Errorf("sink %s: %w", s.Name, err)
		}
	}
	if err := b.deadLetter(cfg.DeadLetter); err != nil {
		return Result{}, fmt.Errorf("dead_letter: %w", err)
	}
	b.processing(cfg.Processing)
	b.metrics(cfg.Metrics)
	b.buckets()
	return Result{Policy: Policy{Version: "2012-10-17", Statement: b.stmts}, Warnings: b.warnings}, nil
}

// metrics adds cloudwatch:PutMetricData when CloudWatch publishing is on. IAM cannot limit that
// action to a resource, only by the namespace.
func (b *builder) metrics(m config.Metrics) {
	if !m.CloudWatch.Enabled {
		return
	}
	b.stmts = append(b.stmts, Statement{Sid: "PublishMetrics", Effect: "Allow",
		Action: []string{"cloudwatch:PutMetricData"}, Resource: []string{"*"},
		Condition: map[string]map[string]string{"StringEquals": {"cloudwatch:namespace": m.CloudWatch.Namespace}}})
}

func (b *builder) sink(s config.Sink) error {
	switch s.Type {
	case "s3":
		c := s.S3
		b.write(c.Bucket, c.Prefix, cmp.Or(c.ErrorOutputPrefix, c.Prefix))
		if c.Delivery == config.DeliveryExactlyOnce {
			b.reads[c.Bucket] = append(b.reads[c.Bucket], c.Prefix)
		}
	case "firehose":
		c := s.Firehose
		arn := c.DeliveryStreamARN
		if arn == "" {
			arn = b.arn("firehose", "deliverystream/"+c.DeliveryStream)
		}
		b.add("Sink"+sid(s.Name)+"Firehose", firehosePut, arn)
		b.write(c.S3Backup.Bucket, c.S3Backup.Prefix)
	case "http":
		b.write(s.HTTP.S3Backup.Bucket, s.HTTP.S3Backup.Prefix)
	case "opensearch":
		c := s.OpenSearch
		if c.Auth.Type == "sigv4" {
			if err := b.openSearch(s.Name, c); err != nil {
				return err
			}
		}
		b.write(c.S3Backup.Bucket, c.S3Backup.Prefix)
	case "file":
	default:
		return fmt.Errorf("type %q has no known permissions", s.Type)
	}
	return nil
}

// openSearch allows HTTP calls to a domain (es) or a collection (aoss) found in the endpoint's
// host name: search-<domain>-<id>.<region>.es.amazonaws.com, <collection>.<region>.aoss.amazonaws.com.
func (b *builder) openSearch(name string, c *config.OpenSearchSink) error {
	service := cmp.Or(c.Auth.Service, "es")
	region := cmp.Or(c.Auth.Region, b.region)
	var resources []string
	for _, ep := range c.Endpoints {
		u, err := url.Parse(ep)
		if err != nil {
			return fmt.Errorf("opensearch endpoint %q: %w", ep, err)
		}
		host := u.Hostname()
		first, _, _ := strings.Cut(host, ".")
		switch {
		case service == "aoss" && strings.HasSuffix(host, ".aoss.amazonaws.com"):
			resources = append(resources, fmt.Sprintf("arn:%s:aoss:%s:%s:collection/%s", b.partition, region, b.account, first))
		case service == "es" && strings.HasPrefix(first, "search-") && strings.Contains(host, ".es.amazonaws.com"):
			domain := strings.TrimPrefix(first, "search-")
			if i := strings.LastIndex(domain, "-"); i > 0 {
				domain = domain[:i]
			}
			resources = append(resources, fmt.Sprintf("arn:%s:es:%s:%s:domain/%s/*", b.partition, region, b.account, domain))
		default:
			resources = append(resources, fmt.Sprintf("arn:%s:%s:%s:%s:*", b.partition, service, region, b.account))
			b.warnings = append(b.warnings, fmt.Sprintf("sink %s: endpoint %s is not an OpenSearch Service host name, so the policy allows every %s resource of the account", name, ep, service))
		}
	}
	actions := []string{"es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost", "es:ESHttpPut"}
	if service == "aoss" {
		actions = []string{"aoss:APIAccessAll"}
	}
	b.add("Sink"+sid(name)+"OpenSearch", actions, resources...)
	return nil
}

func (b *builder) deadLetter(d config.DeadLetter) error {
	switch d.Type {
	case "":
		return nil
	case "sqs":
		arn, err := queueARN(d.SQS.QueueURL, b.partition)
		if err != nil {
			return err
		}
		b.add("DeadLetterQueue", sqsSend, arn)
	case "sns":
		b.add("DeadLetterTopic", snsPublish, d.SNS.TopicARN)
	case "kinesis":
		b.add("DeadLetterStream", kinesisPut, b.streamARN(d.Kinesis.Stream, ""))
	case "s3":
		b.write(d.S3.Bucket, d.S3.Prefix)
	case "file":
		return nil
	default:
		return fmt.Errorf("type %q has no known permissions", d.Type)
	}
	if d.Type == "sqs" || d.Type == "sns" || d.Type == "kinesis" {
		b.write(d.Overflow.Bucket, d.Overflow.Prefix)
	}
	return nil
}

func (b *builder) processing(p config.Processing) {
	var functions []string
	for _, h := range p.Handlers {
		if h.Type == config.HandlerLambda {
			arn := b.functionARN(h.Function)
			functions = append(functions, arn, arn+":*")
		}
	}
	if len(functions) > 0 {
		b.add("InvokeFunctions", lambdaInvoke, functions...)
	}
	if p.ErrorOutput.Bucket != "" {
		b.write(p.ErrorOutput.Bucket, p.ErrorOutput.Prefix)
	}
}

// functionARN turns a name, partial ARN (ACCOUNT:function:NAME) or ARN, optionally with a
// qualifier, into the unqualified function ARN.
func (b *builder) functionARN(f string) string {
	if strings.HasPrefix(f, "arn:") {
		parts := strings.Split(f, ":")
		if len(parts) >= 7 {
			return strings.Join(parts[:7], ":")
		}
		return f
	}
	parts := strings.Split(f, ":")
	account, name := b.account, parts[0]
	if len(parts) >= 3 && parts[1] == "function" {
		account, name = parts[0], parts[2]
	}
	return fmt.Sprintf("arn:%s:lambda:%s:%s:function:%s", b.partition, b.region, account, name)
}

// write notes that objects are written in bucket under each prefix (an empty prefix: anywhere).
func (b *builder) write(bucket string, prefixes ...string) {
	if bucket == "" {
		return
	}
	b.objects[bucket] = append(b.objects[bucket], prefixes...)
}

// buckets adds one statement for the buckets checked at start-up and one for the objects written.
func (b *builder) buckets() {
	if len(b.objects) == 0 {
		return
	}
	var bucketARNs []string
	for _, bucket := range slices.Sorted(maps.Keys(b.objects)) {
		bucketARNs = append(bucketARNs, fmt.Sprintf("arn:%s:s3:::%s", b.partition, bucket))
	}
	b.add("CheckBuckets", bucketCheck, bucketARNs...)
	b.add("WriteObjects", objectWrite, b.objectARNs(b.objects)...)
	if len(b.reads) > 0 {
		b.add("ReadBackObjects", objectRead, b.objectARNs(b.reads)...)
	}
}

// objectARNs is the ARNs of the objects under each bucket's prefixes.
func (b *builder) objectARNs(prefixes map[string][]string) []string {
	var objectARNs []string
	for _, bucket := range slices.Sorted(maps.Keys(prefixes)) {
		var keys []string
		for _, p := range prefixes[bucket] {
			// Expressions (!{timestamp:...}, partition keys) are evaluated per record: the
			// literal text before the first one is what every key starts with.
			p, _, _ = strings.Cut(p, "!{")
			keys = append(keys, fmt.Sprintf("arn:%s:s3:::%s/%s*", b.partition, bucket, p))
		}
		slices.Sort(keys)
		keys = slices.Compact(keys)
		// A prefix covered by a shorter one adds nothing.
		keys = slices.DeleteFunc(keys, func(k string) bool {
			for _, other := range keys {
				if other != k && strings.HasPrefix(strings.TrimSuffix(k, "*"), strings.TrimSuffix(other, "*")) {
					return true
				}
			}
			return false
		})
		objectARNs = append(objectARNs, keys...)
	}
	return objectARNs
}

// add appends a statement, or adds resources to an earlier one with the same actions.
func (b *builder) add(name string, actions []string, resources ...string) {
	actions = slices.Sorted(slices.Values(actions))
	for i := range b.stmts {
		if slices.Equal(b.stmts[i].Action, actions) {
			b.stmts[i].Resource = slices.Compact(slices.Sorted(slices.Values(append(b.stmts[i].Resource, resources...))))
			return
		}
	}
	b.stmts = append(b.stmts, Statement{Sid: name, Effect: "Allow", Action: actions, Resource: slices.Compact(slices.Sorted(slices.Values(resources)))})
}

func (b *builder) arn(service, resource string) string {
	return fmt.Sprintf("arn:%s:%s:%s:%s:%s", b.partition, service, b.region, b.account, resource)
}

// streamARN is arn when set, else the ARN of the stream named nameOrARN (which may itself be an ARN).
func (b *builder) streamARN(nameOrARN, arn string) string {
	if arn != "" {
		return arn
	}
	if strings.HasPrefix(nameOrARN, "arn:") {
		return nameOrARN
	}
	return b.arn("kinesis", "stream/"+nameOrARN)
}

type arnParts struct{ partition, service, region, account, resource string }

func parseARN(s string) (arnParts, error) {
	if s == "" {
		return arnParts{}, fmt.Errorf("empty")
	}
	p := strings.SplitN(s, ":", 6)
	if len(p) != 6 || p[0] != "arn" {
		return arnParts{}, fmt.Errorf("not an ARN (arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE)")
	}
	return arnParts{p[1], p[2], p[3], p[4], p[5]}, nil
}

// queueARN derives a queue's ARN from its URL: https://sqs.REGION.amazonaws.com/ACCOUNT/NAME
// (or an emulator's http://host:port/ACCOUNT/NAME, whose region is unknown: *).
func queueARN(queueURL, partition string) (string, error) {
	u, err := url.Parse(queueURL)
	if err != nil {
		return "", fmt.Errorf("sqs.queue_url %q: %w", queueURL, err)
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) != 2 {
		return "", fmt.Errorf("sqs.queue_url %q: want https://sqs.REGION.amazonaws.com/ACCOUNT/NAME", queueURL)
	}
	region := "*"
	if h := strings.Split(u.Hostname(), "."); len(h) >= 3 && h[0] == "sqs" {
		region = h[1]
	}
	return fmt.Sprintf("arn:%s:sqs:%s:%s:%s", partition, region, parts[0], parts[1]), nil
}

// sid makes a statement id from a sink name: letters and digits only, first letter upper case.
func sid(name string) string {
	var out []rune
	up := true
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z' && up:
			out = append(out, r-'a'+'A')
			up = false
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			out = append(out, r)
			up = false
		default:
			up = true
		}
	}
	return string(out)
}
