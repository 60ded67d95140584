package config

import (
	"fmt"
	"strconv"
)

// Memory bounds what the process holds. Both sizes are in MiB, like Firehose's buffering hints.
//
// LimitMBs is the Go runtime's soft memory limit (what GOMEMLIMIT sets): the heap, goroutine
// stacks and the runtime's own structures. The process's resident size is that plus its mapped
// program code (about 30 MiB for this binary, shared and reclaimable by the kernel). Near the
// limit the garbage collector runs more often rather than let the heap grow. 0 keeps GOMEMLIMIT
// from the environment, if any.
//
// MaxInFlightMBs caps the record data read from Kinesis and not yet acknowledged by every sink,
// over all shards together (the per-shard batching.max_in_flight_records applies as well).
// Reads are sized to fit it: a shard reserves room for a read before making it, and waits while
// the cap is reached. 0 derives it (see InFlightBytes).
type Memory struct {
	LimitMBs       int `koanf:"limit_mbs"`
	MaxInFlightMBs int `koanf:"max_in_flight_mbs"`
}

// Limits of the memory section.
const (
	// MinMemoryLimitMBs is the smallest limit_mbs: below it the runtime's own needs leave no
	// room for records.
	MinMemoryLimitMBs = 16
	// DefaultMaxInFlightMBs is max_in_flight_mbs when neither it nor a memory limit is set.
	DefaultMaxInFlightMBs = 64
	maxMemoryMBs          = 1 << 20 // 1 TiB
)

func (v *checker) memory(m Memory) {
	if m.LimitMBs != 0 && (m.LimitMBs < MinMemoryLimitMBs || m.LimitMBs > maxMemoryMBs) {
		v.add("memory.limit_mbs", strconv.Itoa(m.LimitMBs),
			fmt.Sprintf("is out of range: allowed 0 (no limit set here) or %d to %d", MinMemoryLimitMBs, maxMemoryMBs))
	}
	v.intRange("memory.max_in_flight_mbs", m.MaxInFlightMBs, 0, maxMemoryMBs)
	if !v.bad("memory.limit_mbs") && !v.bad("memory.max_in_flight_mbs") && m.LimitMBs > 0 && m.MaxInFlightMBs > m.LimitMBs/2 {
		v.add("memory.max_in_flight_mbs", strconv.Itoa(m.MaxInFlightMBs),
			fmt.Sprintf("is out of range: allowed at most half of memory.limit_mbs (%d), so that reading and delivering leave the collector room", m.LimitMBs))
	}
}

// InFlightBytes returns the cap on record data in flight given the memory limit that applies
// (limitBytes, 0 for none) and what the process uses before reading anything (floorBytes):
// max_in_flight_mbs when set, else a third of what the limit leaves above the floor (the rest
// is for response buffers and the collector's headroom), at least 1 MiB, else
// DefaultMaxInFlightMBs.
func (m Memory) InFlightBytes(limitBytes, floorBytes int64) int64 {
	switch {
	case m.MaxInFlightMBs > 0:
		return int64(m.MaxInFlightMBs) << 20
	case limitBytes > 0:
		return max((limitBytes-floorBytes)/3, 1<<20)
	default:
		return DefaultMaxInFlightMBs << 20
	}
}
