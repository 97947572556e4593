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

// meter brackets a scenario: wall time, the generator's CPU and the
// server's CPU (when its pid is known).
type meter struct {
	pid           int
	t0            time.Time
	gen0, server0 float64
}

func startMeter(pid int) *meter {
	return &meter{pid: pid, t0: time.Now(), gen0: cpuSelf(), server0: procCPU(pid)}
}

func (m *meter) fill(r result) {
	r["wall_s"] = round(time.Since(m.t0).Seconds(), 3)
	r["gen_cpu_s"] = round(cpuSelf()-m.gen0, 3)
	if m.pid > 0 {
		r["server_cpu_s"] = round(procCPU(m.pid)-m.server0, 2)
	}
}

func round(v float64, digits int) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return -1
	}
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}
