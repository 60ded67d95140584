package main

import (
	"log/slog"
	"math"
	"runtime/debug"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/consumer"
)

// maxResponseData is the most record data one GetRecords response carries (10 MiB).
const maxResponseData = 10 << 20

// memoryBudget applies memory.limit_mbs to the Go runtime and makes the consumer's budget for
// records in flight: memory.max_in_flight_mbs, or derived from the limit that applies
// (limit_mbs, else GOMEMLIMIT). One read reserves at most a quarter of the budget, and never more
// than a response can carry, so that several shards read at once.
func memoryBudget(m config.Memory, log *slog.Logger) *consumer.MemoryBudget {
	var limit int64
	if m.LimitMBs > 0 {
		limit = int64(m.LimitMBs) << 20
		debug.SetMemoryLimit(limit)
	} else if current := debug.SetMemoryLimit(-1); current < math.MaxInt64 {
		limit = current // GOMEMLIMIT
	}
	inFlight := m.InFlightBytes(limit)
	maxRead := min(inFlight/4, maxResponseData)
	log.Info("memory budget", "go_memory_limit_bytes", limit, "max_in_flight_bytes", inFlight, "max_read_bytes", maxRead)
	return consumer.NewMemoryBudget(inFlight, maxRead)
}
