// Command shardhose consumes a Kinesis data stream and delivers its records to Firehose-style
// sinks, checkpointing in DynamoDB only what was delivered.
//
// Usage:
//
//	shardhose run      -c FILE   run the daemon
//	shardhose validate -c FILE   check a config file and print every problem
//	shardhose produce  -c FILE   send sample or generated records to the stream
//	shardhose loadtest -c FILE   send template records and check every one reached the sinks
//	shardhose leases   -c FILE   list the lease table
//	shardhose dlq inspect|replay  read dead letters, send their records back into a stream
//	shardhose iam-policy -c FILE  print the least-privilege IAM policy for the configuration
//	shardhose healthcheck -c FILE  exit 0 if the running daemon is ready (/readyz), else 1
//	shardhose version            print the version
//
// Exit codes: 0 success; 1 bad configuration or a start-up check failed (do not restart until it
// is fixed); 2 a runtime failure; 3 the drain deadline passed with records undelivered (they are
// read again on the next start); 130 a second signal forced the exit.
package main

import (
	"errors"
	"fmt"
	"os"
)

// Exit codes, documented in the README.
const (
	exitOK           = 0
	exitConfig       = 1
	exitRuntime      = 2
	exitDrainTimeout = 3
	exitForced       = 130
)

// usageError is a mistake on the command line; it exits 1 with the usage text.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// commandUsageError is a usage error of a command with its own usage text (dlq), which is
// printed instead of the top-level one.
type commandUsageError struct {
	usageError
	usage string
}

func main() {
	stopProfile := startCPUProfile()
	code := run(os.Args[1:])
	stopProfile()
	os.Exit(code)
}

const usage = `shardhose: consume a Kinesis stream into Firehose-style sinks, losslessly.

Usage:
  shardhose run      -c FILE [flags]   run the daemon
  shardhose validate -c FILE           check a config file and print every problem
  shardhose produce  -c FILE [flags]   send records to the configured stream
  shardhose loadtest -c FILE --template FILE --rate N --duration D [--start]
                                       load-test end to end: send, then find every record in S3
  shardhose leases   -c FILE           list the lease table: owner, counter, checkpoint per shard
  shardhose dlq inspect -c FILE        print dead letters readably (decoded records, why, when, where)
  shardhose dlq replay  -c FILE --to-stream NAME | --to-sinks [--dry-run]
                                       send dead letters' records back into a stream
  shardhose iam-policy -c FILE [--account ID]
                                       print the least-privilege IAM policy for this configuration
  shardhose healthcheck -c FILE | --url URL
                                       exit 0 if the daemon's /readyz says ready, else 1
  shardhose version                    print the version, commit and Go version

Run 'shardhose COMMAND --help' for a command's flags.
Exit codes: 0 ok, 1 bad config or start-up check failed, 2 runtime failure,
3 drain deadline passed (undelivered records are read again), 130 forced by a second signal.
`

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return exitConfig
	}
	var err error
	code := exitOK
	switch args[0] {
	case "run":
		code, err = runDaemon(args[1:])
	case "validate":
		code, err = runValidate(args[1:])
	case "produce":
		code, err = runProduce(args[1:])
	case "loadtest":
		code, err = runLoadtest(args[1:])
	case "leases":
		code, err = runLeases(args[1:])
	case "dlq":
		code, err = runDLQ(args[1:])
	case "iam-policy":
		code, err = runIAMPolicy(args[1:])
	case "healthcheck":
		code, err = runHealthcheck(args[1:])
	case "version", "--version", "-v":
		fmt.Println(currentBuild())
		return exitOK
	case "help", "--help", "-h":
		fmt.Print(usage)
		return exitOK
	default:
		err = usageError{fmt.Sprintf("unknown command %q", args[0])}
	}
	var reported reportedError
	if errors.As(err, &reported) {
		return code
	}
	if err != nil {
		var ce commandUsageError
		if errors.As(err, &ce) {
			fmt.Fprintf(os.Stderr, "shardhose: %v\n\n%s", err, ce.usage)
			return exitConfig
		}
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(os.Stderr, "shardhose: %v\n\n%s", err, usage)
			return exitConfig
		}
		fmt.Fprintf(os.Stderr, "shardhose: %v\n", err)
		if code == exitOK {
			code = exitRuntime
		}
	}
	return code
}
