package main

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// epoch is the generator's monotonic time origin: latencies are differences
// of time.Since(epoch), immune to wall-clock steps.
var epoch = time.Now()

func now() int64 { return int64(time.Since(epoch)) }

// samples collects latencies (nanoseconds) from many goroutines.
type samples struct {
	mu sync.Mutex
	v  []int64
}

func (s *samples) add(ns int64) {
	s.mu.Lock()
	s.v = append(s.v, ns)
	s.mu.Unlock()
}

func (s *samples) addAll(v []int64) {
	s.mu.Lock()
	s.v = append(s.v, v...)
	s.mu.Unlock()
}

// pct returns the q-th percentile (0..100) in milliseconds, nearest rank.
func (s *samples) pct(q float64) float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.v) == 0 {
		return math.NaN()
	}
	if !slices.IsSorted(s.v) {
		slices.Sort(s.v)
	}
	i := int(math.Ceil(q/100*float64(len(s.v)))) - 1
	i = max(0, min(i, len(s.v)-1))
	return float64(s.v[i]) / 1e6
}

func (s *samples) n() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.v)
}

// cpuSelf returns this process's user+system CPU time in seconds.
func cpuSelf() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return math.NaN()
	}
	return tv(ru.Utime) + tv(ru.Stime)
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// procCPU returns the user+system CPU seconds of pid from /proc/PID/stat.
func procCPU(pid int) float64 {
	if pid <= 0 {
		return math.NaN()
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return math.NaN()
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return math.NaN()
	}
	f := strings.Fields(s[i+1:])
	// fields after ")": state(0) ppid(1) ... utime(11) stime(12)
	if len(f) < 13 {
		return math.NaN()
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ is 100 on Linux
}

// procRSS returns VmRSS of pid in KiB.
func procRSS(pid int) int64 {
	if pid <= 0 {
		return -1
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			fs := strings.Fields(rest)
			if len(fs) > 0 {
				v, _ := strconv.ParseInt(fs[0], 10, 64)
				return v
			}
		}
	}
	return -1
}

// procRunqWait returns the seconds the threads of pid have spent runnable
// but waiting for a CPU (/proc/PID/task/*/schedstat, second field): time
// the process wanted CPU and the machine did not give it. Threads that
// exited are not counted.
func procRunqWait(pid int) float64 {
	dirs, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return math.NaN()
	}
	var total float64
	for _, d := range dirs {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, d.Name()))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) >= 2 {
			v, _ := strconv.ParseFloat(f[1], 64)
			total += v / 1e9
		}
	}
	return total
}

// cpuBusy returns the busy seconds of one CPU from /proc/stat.
func cpuBusy(cpu int) float64 {
	if cpu < 0 {
		return math.NaN()
	}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return math.NaN()
	}
	prefix := fmt.Sprintf("cpu%d ", cpu)
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		f := strings.Fields(line)
		// user nice system idle iowait irq softirq steal
		var busy float64
		for _, i := range []int{1, 2, 3, 6, 7, 8} {
			if i < len(f) {
				v, _ := strconv.ParseFloat(f[i], 64)
				busy += v
			}
		}
		return busy / 100
	}
	return math.NaN()
}

// pinnedCPU returns the one CPU pid may run on, or -1.
func pinnedCPU(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(rest))
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}

// meter brackets a scenario: wall time, the generator's CPU and the
// server's CPU (when its pid is known).
type meter struct {
	pid                   int
	t0                    time.Time
	gen0, server0         float64
	genWait0, serverWait0 float64
	genCPU, serverCPU     int // pinned CPUs, or -1
	genBusy0, srvBusy0    float64
}

func startMeter(pid int) *meter {
	m := &meter{pid: pid, t0: time.Now(), gen0: cpuSelf(), genWait0: procRunqWait(os.Getpid())}
	m.genCPU, m.serverCPU = pinnedCPU(os.Getpid()), -1
	m.genBusy0 = cpuBusy(m.genCPU)
	if pid > 0 {
		m.server0, m.serverWait0 = procCPU(pid), procRunqWait(pid)
		m.serverCPU = pinnedCPU(pid)
		m.srvBusy0 = cpuBusy(m.serverCPU)
	}
	return m
}

func (m *meter) fill(r result) {
	wall := time.Since(m.t0).Seconds()
	genCPU := cpuSelf() - m.gen0
	r["wall_s"] = round(wall, 3)
	r["gen_cpu_s"] = round(genCPU, 3)
	// Load from other processes on the pinned CPUs (a shared machine):
	// the CPU's busy time minus what the server and the generator used.
	var srvCPU float64
	if m.pid > 0 {
		srvCPU = procCPU(m.pid) - m.server0
	}
	other := func(cpu int, busy0 float64) float64 {
		v := cpuBusy(cpu) - busy0
		if cpu == m.serverCPU {
			v -= srvCPU
		}
		if cpu == m.genCPU {
			v -= genCPU
		}
		return max(0, 100*v/wall)
	}
	if m.genCPU >= 0 {
		r["gen_cpu_other_pct"] = round(other(m.genCPU, m.genBusy0), 1)
	}
	if m.serverCPU >= 0 && m.serverCPU != m.genCPU {
		r["server_cpu_other_pct"] = round(other(m.serverCPU, m.srvBusy0), 1)
	}
	r["gen_runq_wait_s"] = round(procRunqWait(os.Getpid())-m.genWait0, 3)
	if m.pid > 0 {
		r["server_cpu_s"] = round(procCPU(m.pid)-m.server0, 2)
		r["server_runq_wait_s"] = round(procRunqWait(m.pid)-m.serverWait0, 3)
	}
}

func round(v float64, digits int) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return -1
	}
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}
