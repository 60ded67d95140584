package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"

	"github.com/shardhose/shardhose/iampolicy"
)

// runIAMPolicy prints the least-privilege IAM policy for the configuration (see package
// iampolicy); notes on where it had to be wider go to stderr.
func runIAMPolicy(args []string) (int, error) {
	return iamPolicyMain(args, os.Stdout, os.Stderr)
}

func iamPolicyMain(args []string, out, notes io.Writer) (int, error) {
	var o iampolicy.Options
	cfg, _, err := loadConfig("iam-policy", args, func(fs *pflag.FlagSet) {
		fs.StringVar(&o.Account, "account", "", "AWS account id for ARNs the configuration gives by name (default: from stream.arn, else *)")
		fs.StringVar(&o.Partition, "partition", "", "ARN partition: aws, aws-cn or aws-us-gov (default: from stream.arn, else aws)")
	})
	if errors.Is(err, pflag.ErrHelp) {
		return exitOK, nil
	}
	if err != nil {
		return exitConfig, err
	}
	res, err := iampolicy.For(cfg, o)
	if err != nil {
		return exitConfig, err
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(notes, "shardhose iam-policy: note: %s\n", w)
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(res.Policy); err != nil {
		return exitRuntime, err
	}
	return exitOK, nil
}
