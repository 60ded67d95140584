package kcl_test

import (
	"strings"
	"testing"

	kclconfig "github.com/vmware/vmware-go-kcl-v2/clientlibrary/config"
	"github.com/vmware/vmware-go-kcl-v2/clientlibrary/metrics"

	"github.com/shardhose/shardhose/kcl"
)

func TestNewWorkerRefusesWhatItCannotHonour(t *testing.T) {
	cfg := kclconfig.NewKinesisClientLibConfig("app", "stream", "us-east-1", "w1").
		WithEnhancedFanOutConsumer(true).
		WithCallProcessRecordsEvenForEmptyRecordList(true).
		WithMonitoringService(countingMetrics{})
	cfg.MaxRecords = 20000
	cfg.IdleTimeBetweenReadsInMillis = 50
	cfg.LeaseRefreshPeriodMillis = 8000 // more than half of the 10 s failover time
	w := kcl.NewWorker(newApp(-1), cfg)
	err := w.Start()
	if err == nil {
		t.Fatal("Start accepted a configuration shardhose cannot honour")
	}
	for _, want := range []string{
		"EnableEnhancedFanOutConsumer = true",
		"CallProcessRecordsEvenForEmptyRecordList = true",
		"MonitoringService",
		"MaxRecords = 20000",
		"IdleTimeBetweenReadsInMillis = 50",
		"LeaseRefreshPeriodMillis = 8000",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %q:\n%v", want, err)
		}
	}
	if w.Err() == nil || w.Err().Error() != err.Error() {
		t.Errorf("Err() = %v, want the error Start returned", w.Err())
	}
}

func TestNewWorkerAcceptsTheLibrarysDefaults(t *testing.T) {
	cfg := kclconfig.NewKinesisClientLibConfig("app", "stream", "us-east-1", "w1")
	if err := kcl.NewWorker(newApp(-1), cfg).Err(); err != nil {
		t.Fatalf("the library's default configuration was refused: %v", err)
	}
	cfg.InitialPositionInStream = kclconfig.AT_TIMESTAMP
	cfg.InitialPositionInStreamExtended.Timestamp = nil
	err := kcl.NewWorker(newApp(-1), cfg).Err()
	if err == nil || !strings.Contains(err.Error(), "InitialPositionInStreamExtended.Timestamp") {
		t.Errorf("AT_TIMESTAMP without a timestamp: error %v, want one naming the timestamp field", err)
	}
}

// countingMetrics stands for an application's metrics service (the library's Prometheus or
// CloudWatch one).
type countingMetrics struct{ metrics.NoopMonitoringService }
