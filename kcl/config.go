package kcl

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	kclconfig "github.com/vmware/vmware-go-kcl-v2/clientlibrary/config"
	"github.com/vmware/vmware-go-kcl-v2/clientlibrary/metrics"

	"github.com/shardhose/shardhose/config"
)

// settings is what NewWorker takes from the library's configuration.
type settings struct {
	stream        config.Stream
	leases        config.Leases
	region        string
	shutdownGrace time.Duration
	noClaims      bool
}

// checkpointInterval is how often a shard's checkpoint is written once the processor has moved
// it; a Checkpoint call waits for that write.
const checkpointInterval = 100 * time.Millisecond

// fieldError names a configuration field, the value given and what is allowed.
func fieldError(field string, value any, allowed string) error {
	return fmt.Errorf("kcl: KinesisClientLibConfiguration.%s = %v: %s", field, value, allowed)
}

// translate checks cfg and maps the fields shardhose honours onto its own settings. Every field
// set to a value shardhose cannot honour is an error naming it; see
// docs/migrating-from-vmware-go-kcl.md for the fields that are accepted but not used.
func translate(cfg *kclconfig.KinesisClientLibConfiguration) (settings, error) {
	if cfg == nil {
		return settings{}, errors.New("kcl: the configuration is nil")
	}
	var errs []error
	add := func(err error) { errs = append(errs, err) }

	var s settings
	if strings.TrimSpace(cfg.StreamName) == "" {
		add(fieldError("StreamName", `""`, "the stream to read is required"))
	}
	s.stream.Name = cfg.StreamName
	s.leases.Table = cfg.TableName
	if s.leases.Table == "" {
		s.leases.Table = cfg.ApplicationName
	}
	if len(s.leases.Table) < 3 || len(s.leases.Table) > 255 {
		add(fieldError("TableName", fmt.Sprintf("%q", s.leases.Table), "a DynamoDB table name of 3 to 255 characters is required (ApplicationName is used when TableName is empty)"))
	}
	if strings.TrimSpace(cfg.WorkerID) == "" {
		add(fieldError("WorkerID", `""`, "a worker id unique in the fleet is required"))
	}
	s.leases.WorkerID = cfg.WorkerID
	s.region = cfg.RegionName
	if s.region == "" {
		add(fieldError("RegionName", `""`, "a region is required"))
	}

	switch cfg.InitialPositionInStream {
	case kclconfig.LATEST, 0:
		s.stream.StartingPosition = "LATEST"
	case kclconfig.TRIM_HORIZON:
		s.stream.StartingPosition = "TRIM_HORIZON"
	case kclconfig.AT_TIMESTAMP:
		s.stream.StartingPosition = "AT_TIMESTAMP"
		ts := cfg.InitialPositionInStreamExtended.Timestamp
		if ts == nil {
			add(fieldError("InitialPositionInStreamExtended.Timestamp", "nil", "AT_TIMESTAMP needs a timestamp"))
		} else {
			s.stream.StartingPositionTimestamp = float64(ts.UnixNano()) / float64(time.Second)
		}
	default:
		add(fieldError("InitialPositionInStream", cfg.InitialPositionInStream, "use LATEST, TRIM_HORIZON or AT_TIMESTAMP"))
	}

	maxRecords := orDefault(cfg.MaxRecords, kclconfig.DefaultMaxRecords)
	if maxRecords < 1 || maxRecords > 10000 {
		add(fieldError("MaxRecords", cfg.MaxRecords, "GetRecords takes 1 to 10000 records"))
	}
	s.stream.MaxRecordsPerRead = maxRecords

	idle := millis(orDefault(cfg.IdleTimeBetweenReadsInMillis, kclconfig.DefaultIdleTimeBetweenReadsMillis))
	if idle < config.MinPollInterval || idle > config.MaxPollInterval {
		add(fieldError("IdleTimeBetweenReadsInMillis", cfg.IdleTimeBetweenReadsInMillis,
			fmt.Sprintf("%d to %d ms (Kinesis allows 5 reads per shard per second; an iterator expires after 5 minutes)",
				config.MinPollInterval.Milliseconds(), config.MaxPollInterval.Milliseconds())))
	}
	s.stream.PollInterval = idle

	failover := millis(orDefault(cfg.FailoverTimeMillis, kclconfig.DefaultFailoverTimeMillis))
	refresh := millis(orDefault(cfg.LeaseRefreshPeriodMillis, kclconfig.DefaultLeaseRefreshPeriodMillis))
	if failover < time.Second {
		add(fieldError("FailoverTimeMillis", cfg.FailoverTimeMillis, "at least 1000 ms"))
	}
	if refresh <= 0 || refresh*2 > failover {
		add(fieldError("LeaseRefreshPeriodMillis", cfg.LeaseRefreshPeriodMillis,
			fmt.Sprintf("more than 0 and at most half of FailoverTimeMillis (%d ms), so a live lease never looks expired", failover.Milliseconds())))
	}
	s.leases.LeaseDuration = failover
	s.leases.RenewInterval = refresh
	s.leases.ShardSyncInterval = millis(orDefault(cfg.ShardSyncIntervalMillis, kclconfig.DefaultShardSyncIntervalMillis))
	if s.leases.ShardSyncInterval < 0 {
		add(fieldError("ShardSyncIntervalMillis", cfg.ShardSyncIntervalMillis, "must not be negative"))
	}
	s.leases.CheckpointInterval = checkpointInterval

	switch n := cfg.MaxLeasesForWorker; {
	case n < 0:
		add(fieldError("MaxLeasesForWorker", n, "must not be negative"))
	case n == 0 || n >= math.MaxInt16:
		s.leases.MaxLeasesPerWorker = 0 // no cap
	default:
		s.leases.MaxLeasesPerWorker = n
	}
	s.noClaims = !cfg.EnableLeaseStealing
	s.shutdownGrace = millis(orDefault(cfg.ShutdownGraceMillis, kclconfig.DefaultShutdownGraceMillis))

	// What shardhose cannot do: refuse rather than differ silently.
	if cfg.EnableEnhancedFanOutConsumer {
		add(fieldError("EnableEnhancedFanOutConsumer", true, "shardhose reads shards by polling GetRecords; enhanced fan-out is not supported"))
	}
	if cfg.CallProcessRecordsEvenForEmptyRecordList {
		add(fieldError("CallProcessRecordsEvenForEmptyRecordList", true, "ProcessRecords is called only with records; set it to false"))
	}
	switch cfg.MonitoringService.(type) {
	case nil, metrics.NoopMonitoringService, *metrics.NoopMonitoringService:
	default:
		add(fieldError("MonitoringService", fmt.Sprintf("%T", cfg.MonitoringService), "the library's metrics are not emitted; leave it nil and use shardhose's hooks (Worker.WithHooks)"))
	}
	return s, errors.Join(errs...)
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func millis(n int) time.Duration { return time.Duration(n) * time.Millisecond }
