package main

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// cpuProfileEnv names a file to which the process writes a CPU profile of its whole run, from
// the start of the command to its return (start-up, work and shutdown included; package
// initialisation runs before and is not in it), in the format `go tool pprof` reads. It is a
// debugging aid, off unless set, and not a configuration key. A process that exits on a second
// signal writes no profile. It samples 100 times a second.
const cpuProfileEnv = "SHARDHOSE_DEBUG_CPU_PROFILE"

// startCPUProfile starts the profile cpuProfileEnv asks for and returns the function that
// writes it out; with the variable unset it does nothing. A profile that cannot be started or
// written is reported on stderr and never stops the command.
func startCPUProfile() (stop func()) {
	path := os.Getenv(cpuProfileEnv)
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "shardhose: %s: %v\n", cpuProfileEnv, err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(os.Stderr, "shardhose: %s: %v\n", cpuProfileEnv, err)
		_ = f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "shardhose: %s: %v\n", cpuProfileEnv, err)
		}
	}
}
