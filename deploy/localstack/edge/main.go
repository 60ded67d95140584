// Command edge gives the local stack (deploy/local) one LocalStack-style endpoint: it listens on
// one port and forwards each request to kinesis-local, dynalite or moto by the service in its
// SigV4 credential scope, so configs/localstack.yaml works against the local stack unchanged:
//
//	make local-up
//	go run ./deploy/localstack/edge &            # listens on 127.0.0.1:4566
//	shardhose run -c configs/localstack.yaml     # with SHARDHOSE_DEAD_LETTER__SQS__QUEUE_URL pointing at moto's account
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/shardhose/shardhose/internal/edge"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:4566", "address to listen on")
	port := func(env, def string) string {
		if v := os.Getenv(env); v != "" {
			return v
		}
		return def
	}
	kinesis := flag.String("kinesis", "http://127.0.0.1:"+port("KINESIS_LOCAL_PORT", "14567"), "Kinesis backend")
	dynamodb := flag.String("dynamodb", "http://127.0.0.1:"+port("DYNALITE_PORT", "14570"), "DynamoDB backend")
	moto := flag.String("moto", "http://127.0.0.1:"+port("MOTO_PORT", "14571"), "backend of S3, SQS, SNS, Firehose, CloudWatch")
	flag.Parse()

	router, err := edge.New(map[string]string{
		"kinesis": *kinesis, "dynamodb": *dynamodb,
		"s3": *moto, "sqs": *moto, "sns": *moto, "firehose": *moto, "monitoring": *moto,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	log.Printf("edge: listening on %s: kinesis %s, dynamodb %s, s3/sqs/sns/firehose/cloudwatch %s", *listen, *kinesis, *dynamodb, *moto)
	srv := &http.Server{Addr: *listen, Handler: router, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
