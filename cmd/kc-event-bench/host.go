package main

import (
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/procfs"
)

// host reads what the kernel reports under /proc about the machine and
// about a live process (the emitter).
type host struct {
	fs procfs.FS
}

// newHost reads the proc file system mounted at mount (procfs.DefaultMountPoint
// outside the tests).
func newHost(mount string) (host, error) {
	fs, err := procfs.NewFS(mount)
	if err != nil {
		return host{}, fmt.Errorf("the proc file system of Linux at %s: %w", mount, err)
	}
	return host{fs: fs}, nil
}

// memory is the resident set size of a process, now and at its peak, in bytes.
type memory struct {
	rss, peak int64
}

// memory returns VmRSS and VmHWM of /proc/<pid>/status of a live process.
func (h host) memory(pid int) (memory, error) {
	p, err := h.fs.Proc(pid)
	if err != nil {
		return memory{}, err
	}
	st, err := p.NewStatus()
	if err != nil {
		return memory{}, fmt.Errorf("status of process %d: %w", pid, err)
	}
	if st.VmRSS == 0 || st.VmHWM == 0 {
		return memory{}, fmt.Errorf("status of process %d: no VmRSS or VmHWM", pid)
	}
	return memory{rss: int64(st.VmRSS), peak: int64(st.VmHWM)}, nil
}

// cpu returns the user + system time a live process used so far.
func (h host) cpu(pid int) (time.Duration, error) {
	p, err := h.fs.Proc(pid)
	if err != nil {
		return 0, err
	}
	st, err := p.Stat()
	if err != nil {
		return 0, fmt.Errorf("stat of process %d: %w", pid, err)
	}
	return time.Duration(st.CPUTime() * float64(time.Second)), nil
}

// loadAverage returns the one-minute load average, or -1.
func (h host) loadAverage() float64 {
	l, err := h.fs.LoadAvg()
	if err != nil {
		return -1
	}
	return l.Load1
}

// memTotal returns the machine's memory (MemTotal) in GiB.
func (h host) memTotal() string {
	m, err := h.fs.Meminfo()
	if err != nil || m.MemTotalBytes == nil {
		return "?"
	}
	return fmt.Sprintf("%.0f GiB", float64(*m.MemTotalBytes)/(1<<30))
}

// clockTicks is USER_HZ, the unit of the times in /proc/<pid>/stat (what
// procfs assumes too).
const clockTicks = 100

// cpuOf returns the CPU time used so far by the live processes that match
// (their command name, their command line), with that of the children
// they reaped (a PostgreSQL backend's time moves to the postmaster's when
// the backend exits), and their pids. Processes that vanish while read are
// skipped: read while a child exits, its time may be in neither.
func (h host) cpuOf(match func(comm string, cmdline []string) bool) (time.Duration, map[int]bool, error) {
	procs, err := h.fs.AllProcs()
	if err != nil {
		return 0, nil, fmt.Errorf("list processes: %w", err)
	}
	var ticks int64
	pids := map[int]bool{}
	for _, p := range procs {
		st, err := p.Stat()
		if err != nil {
			continue
		}
		cmd, err := p.CmdLine()
		if err != nil || !match(st.Comm, cmd) {
			continue
		}
		ticks += int64(st.UTime) + int64(st.STime) + int64(st.CUTime) + int64(st.CSTime)
		pids[p.PID] = true
	}
	return time.Duration(ticks) * time.Second / clockTicks, pids, nil
}

// settledCPUOf is cpuOf once the matching processes that were not among
// before have exited (within timeout): the backends of a client that just
// closed its connections, whose time then is all in their parent's.
func (h host) settledCPUOf(match func(comm string, cmdline []string) bool, before map[int]bool, timeout time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(timeout)
	for {
		cpu, pids, err := h.cpuOf(match)
		if err != nil || !hasNew(pids, before) || time.Now().After(deadline) {
			return cpu, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hasNew tells whether pids holds one that before does not.
func hasNew(pids, before map[int]bool) bool {
	for pid := range pids {
		if !before[pid] {
			return true
		}
	}
	return false
}

// isPostgres matches PostgreSQL's processes, isKafkaBroker the broker of
// scripts/kafka.sh (a JVM running kafka.Kafka).
func isPostgres(comm string, _ []string) bool { return comm == "postgres" }

func isKafkaBroker(comm string, cmdline []string) bool {
	return comm == "java" && slices.Contains(cmdline, "kafka.Kafka")
}
