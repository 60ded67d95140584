package main

import (
	"log/slog"
	"math"
	"runtime/debug"
	"runtime/metrics"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/consumer"
)

// maxResponseData is the most record data one GetRecords response carries (10 MiB).
const maxResponseData = 10 << 20

// memoryBudget applies memory.limit_mbs to the Go runtime and makes the consumer's budget for
// records in flight: memory.max_in_flight_mbs, or derived from the limit that applies
// (limit_mbs, else GOMEMLIMIT) and what the runtime uses at start. One read reserves at most a
// quarter of the budget, and never more than a response can carry, so that several shards read
// at once.
func memoryBudget(m config.Memory, log *slog.Logger) *consumer.MemoryBudget {
	var limit int64
	if m.LimitMBs > 0 {
		limit = int64(m.LimitMBs) << 20
		debug.SetMemoryLimit(limit)
	} else if current := debug.SetMemoryLimit(-1); current < math.MaxInt64 {
		limit = current // GOMEMLIMIT
	}
	floor := runtimeMemoryInUse()
	inFlight := m.InFlightBytes(limit, floor)
	maxRead := min(inFlight/4, maxResponseData)
	log.Info("memory budget", "go_memory_limit_bytes", limit, "in_use_at_start_bytes", floor, "max_in_flight_bytes", inFlight, "max_read_bytes", maxRead)
	if limit > 0 && limit-floor < 3*inFlight {
		log.Warn("the memory limit leaves little room above what the process uses at start: the garbage collector will run often and records wait for room",
			"limit_mbs", limit>>20, "in_use_at_start_mbs", floor>>20, "max_in_flight_bytes", inFlight)
	}
	return consumer.NewMemoryBudget(inFlight, maxRead)
}

// runtimeMemoryInUse is the memory the Go runtime holds from the OS now (heap, stacks, its own
// structures; not what it has returned): what GOMEMLIMIT counts.
func runtimeMemoryInUse() int64 {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 || s[1].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return int64(s[0].Value.Uint64() - s[1].Value.Uint64())
}
