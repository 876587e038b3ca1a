// Package hoststat reads the kiosk host's health figures from Linux's /proc and statfs: CPU use,
// memory, free disk, uptime and the agent's own resident memory.
package hoststat

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Sample is one reading.
type Sample struct {
	UptimeS      int64   `json:"uptimeSeconds"`
	CPUPercent   float64 `json:"cpuPercent"` // since the previous Read of the same Sampler (0 on the first)
	MemUsedBytes uint64  `json:"memUsedBytes"`
	MemTotal     uint64  `json:"memTotalBytes"`
	DiskFree     uint64  `json:"diskFreeBytes"`
	DiskTotal    uint64  `json:"diskTotalBytes"`
	RSSBytes     uint64  `json:"rssBytes"` // the agent's resident memory
}

// Sampler reads samples; it keeps the previous CPU counters to compute use between reads.
type Sampler struct {
	Proc string // /proc by default
	Disk string // path whose file system is measured

	mu                sync.Mutex
	prevIdle, prevAll uint64
}

// Read takes a sample. Figures that cannot be read are left zero and reported in err (joined).
func (s *Sampler) Read() (Sample, error) {
	proc := s.Proc
	if proc == "" {
		proc = "/proc"
	}
	var out Sample
	var errs []string
	if b, err := os.ReadFile(proc + "/uptime"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			v, _ := strconv.ParseFloat(f[0], 64)
			out.UptimeS = int64(v)
		}
	} else {
		errs = append(errs, err.Error())
	}
	if idle, all, err := cpuTimes(proc + "/stat"); err == nil {
		s.mu.Lock()
		if s.prevAll > 0 && all > s.prevAll {
			out.CPUPercent = 100 * (1 - float64(idle-s.prevIdle)/float64(all-s.prevAll))
		}
		s.prevIdle, s.prevAll = idle, all
		s.mu.Unlock()
	} else {
		errs = append(errs, err.Error())
	}
	if m, err := kv(proc+"/meminfo", 1024); err == nil {
		out.MemTotal = m["MemTotal"]
		out.MemUsedBytes = m["MemTotal"] - m["MemAvailable"]
	} else {
		errs = append(errs, err.Error())
	}
	if m, err := kv(proc+"/self/status", 1024); err == nil {
		out.RSSBytes = m["VmRSS"]
	} else {
		errs = append(errs, err.Error())
	}
	disk := s.Disk
	if disk == "" {
		disk = "/"
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(disk, &st); err == nil {
		out.DiskFree = st.Bavail * uint64(st.Bsize)
		out.DiskTotal = st.Blocks * uint64(st.Bsize)
	} else {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		return out, fmt.Errorf("hoststat: %s", strings.Join(errs, "; "))
	}
	return out, nil
}

// cpuTimes returns idle and total jiffies from the aggregate "cpu" line of /proc/stat.
func cpuTimes(path string) (idle, all uint64, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("%s: unexpected first line", path)
	}
	for i, v := range f[1:] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", path, err)
		}
		all += n
		if i == 3 || i == 4 { // idle, iowait (proc(5))
			idle += n
		}
	}
	return idle, all, nil
}

// kv parses "Key:   123 kB" lines, scaling values that carry a kB unit.
func kv(path string, unit uint64) (map[string]uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := map[string]uint64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fs := strings.Fields(v)
		if len(fs) == 0 {
			continue
		}
		n, err := strconv.ParseUint(fs[0], 10, 64)
		if err != nil {
			continue
		}
		if len(fs) > 1 && fs[1] == "kB" {
			n *= unit
		}
		m[k] = n
	}
	return m, sc.Err()
}
