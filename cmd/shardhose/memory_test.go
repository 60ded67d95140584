package main

import (
	"io"
	"log/slog"
	"math"
	"runtime/debug"
	"testing"

	"github.com/shardhose/shardhose/config"
)

// TestMemoryBudgetFromTheConfiguration: memory.limit_mbs becomes the Go runtime's limit and sizes
// the budget below it; max_in_flight_mbs wins when set; without either the default applies and
// the runtime is left as it is (a GOMEMLIMIT from the environment is then what counts).
func TestMemoryBudgetFromTheConfiguration(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	const mib = 1 << 20

	debug.SetMemoryLimit(math.MaxInt64)
	b := memoryBudget(config.Memory{}, log)
	if b.Limit() != config.DefaultMaxInFlightMBs*mib || b.MaxRead() != maxResponseData {
		t.Errorf("defaults: budget %d, reads %d; want %d and %d", b.Limit(), b.MaxRead(), config.DefaultMaxInFlightMBs*mib, maxResponseData)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("without limit_mbs the runtime's limit became %d", got)
	}

	b = memoryBudget(config.Memory{LimitMBs: 256}, log)
	if got := debug.SetMemoryLimit(-1); got != 256*mib {
		t.Errorf("limit_mbs 256: the runtime's limit is %d, want %d", got, 256*mib)
	}
	if b.Limit() <= 0 || b.Limit() > 256*mib/3 || b.MaxRead() != min(b.Limit()/4, maxResponseData) {
		t.Errorf("limit_mbs 256: budget %d with reads of %d; want at most a third of the limit, reads a quarter of it or 10 MiB", b.Limit(), b.MaxRead())
	}
	b = memoryBudget(config.Memory{LimitMBs: 32}, log)
	if b.Limit() > 32*mib/3 || b.MaxRead() != b.Limit()/4 {
		t.Errorf("limit_mbs 32: budget %d with reads of %d; want at most a third of the limit, reads a quarter of it", b.Limit(), b.MaxRead())
	}

	// A limit already set (as GOMEMLIMIT does) sizes the budget the same way.
	debug.SetMemoryLimit(128 * mib)
	if b := memoryBudget(config.Memory{}, log); b.Limit() > 128*mib/3 {
		t.Errorf("GOMEMLIMIT 128 MiB: budget %d, want at most a third of it", b.Limit())
	}

	b = memoryBudget(config.Memory{LimitMBs: 256, MaxInFlightMBs: 100}, log)
	if b.Limit() != 100*mib || b.MaxRead() != maxResponseData {
		t.Errorf("max_in_flight_mbs 100: budget %d with reads of %d; want %d and %d", b.Limit(), b.MaxRead(), 100*mib, maxResponseData)
	}
}
