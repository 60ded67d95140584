package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/shardhose/shardhose/checkpoint"
	"github.com/shardhose/shardhose/internal/awsclient"
	"github.com/shardhose/shardhose/internal/clock"
)

// runLeases prints the lease table: one row per shard with its owner, fencing counter,
// checkpoint, parents, pending claim, and how long ago the owner last renewed (from the
// informational LeaseTimeout, so it is only as good as the clocks involved).
func runLeases(args []string) (int, error) {
	cfg, _, err := loadConfig("leases", args, nil)
	if errors.Is(err, pflag.ErrHelp) {
		return exitOK, nil
	}
	if err != nil {
		return exitConfig, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), startupTimeout)
	defer cancel()
	awsCfg, err := awsclient.Load(ctx, cfg.AWS, nil)
	if err != nil {
		return exitConfig, fmt.Errorf("aws configuration: %w", err)
	}
	table := checkpoint.NewTable(awsclient.DynamoDB(awsCfg, cfg.AWS), cfg.Leases.Table, cfg.Leases.WorkerID,
		checkpoint.Options{LeaseDuration: cfg.Leases.LeaseDuration, Clock: clock.Real()})
	leases, err := table.List(ctx)
	if err != nil {
		return exitRuntime, fmt.Errorf("lease table %q at %s: %w", cfg.Leases.Table, awsclient.Endpoint(cfg.AWS, "dynamodb"), err)
	}
	sort.Slice(leases, func(i, j int) bool { return leases[i].ShardID < leases[j].ShardID })
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SHARD\tOWNER\tCOUNTER\tCHECKPOINT\tPARENTS\tCLAIM\tRENEWED")
	now := time.Now()
	for _, l := range leases {
		cp := l.Checkpoint.String()
		if l.ShardEnd {
			cp = checkpoint.ShardEnd
		}
		renewed := "-"
		if l.Owner != "" && !l.LeaseTimeout.IsZero() {
			renewed = now.Sub(l.LeaseTimeout.Add(-cfg.Leases.LeaseDuration)).Round(time.Second).String() + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", l.ShardID, dash(l.Owner), l.Counter, dash(cp),
			dash(strings.Join(l.ParentShardIDs, ",")), dash(l.ClaimRequest), renewed)
	}
	if err := tw.Flush(); err != nil {
		return exitRuntime, err
	}
	fmt.Printf("%d leases in %s\n", len(leases), cfg.Leases.Table)
	return exitOK, nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
