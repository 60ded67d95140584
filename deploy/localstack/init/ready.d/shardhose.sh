#!/usr/bin/env bash
# Runs inside LocalStack when it is ready (init/ready.d): the resources configs/localstack.yaml
# uses. Idempotent: a second run leaves what exists alone.
set -euo pipefail

STREAM=${SHARDHOSE_STREAM:-shardhose-demo}
SHARDS=${SHARDHOSE_SHARDS:-4}
BUCKET=${SHARDHOSE_BUCKET:-shardhose-demo}
QUEUE=${SHARDHOSE_DLQ:-shardhose-demo-dlq}
TABLE=${SHARDHOSE_LEASE_TABLE:-shardhose-demo-leases}

awslocal kinesis describe-stream-summary --stream-name "$STREAM" >/dev/null 2>&1 ||
	awslocal kinesis create-stream --stream-name "$STREAM" --shard-count "$SHARDS"
awslocal kinesis wait stream-exists --stream-name "$STREAM"

awslocal s3api head-bucket --bucket "$BUCKET" >/dev/null 2>&1 ||
	awslocal s3api create-bucket --bucket "$BUCKET"

awslocal sqs create-queue --queue-name "$QUEUE" >/dev/null

# shardhose creates its lease table itself (leases.create_table); creating it here shows the
# layout for those who provision it elsewhere and set create_table: false.
awslocal dynamodb describe-table --table-name "$TABLE" >/dev/null 2>&1 ||
	awslocal dynamodb create-table --table-name "$TABLE" \
		--attribute-definitions AttributeName=ShardID,AttributeType=S \
		--key-schema AttributeName=ShardID,KeyType=HASH \
		--billing-mode PAY_PER_REQUEST >/dev/null

echo "shardhose: stream $STREAM ($SHARDS shards), bucket $BUCKET, queue $QUEUE, table $TABLE ready"
