package loadtest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of the CPU times in /proc/PID/stat: Linux reports them in USER_HZ, which
// is 100 on every architecture Go supports.
const userHZ = 100

// ReadProcess reads a Linux process's CPU time (user plus system, from /proc/PID/stat) and its
// peak resident set size (VmHWM, from /proc/PID/status).
func ReadProcess(pid int) (ProcessUsage, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcessUsage{}, fmt.Errorf("read CPU time of process %d: %w", pid, err)
	}
	cpu, err := parseStatCPU(stat)
	if err != nil {
		return ProcessUsage{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ProcessUsage{}, fmt.Errorf("read memory of process %d: %w", pid, err)
	}
	rss, err := parseStatusHWM(status)
	if err != nil {
		return ProcessUsage{}, fmt.Errorf("/proc/%d/status: %w", pid, err)
	}
	return ProcessUsage{CPU: cpu, PeakRSS: rss}, nil
}

// parseStatCPU returns utime + stime of a /proc/PID/stat line. The command name (field 2) is in
// parentheses and may hold spaces, so fields are counted after its closing parenthesis.
func parseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("no command name in %q", stat)
	}
	f := strings.Fields(string(stat[i+1:]))
	// After the name: state (field 3), …, utime (14), stime (15).
	if len(f) < 13 {
		return 0, fmt.Errorf("%d fields after the command name, want at least 13", len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("CPU time %q is not a number", s)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// parseStatusHWM returns VmHWM of /proc/PID/status in bytes.
func parseStatusHWM(status []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("VmHWM %q is not a number of kB", rest)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("VmHWM %q is not a number of kB", rest)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("no VmHWM line")
}
