package gpu

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// podUIDPattern finds a pod UID in a cgroup path, in both the cgroupfs
// (/kubepods/burstable/pod<uid>/<container>) and the systemd
// (kubepods-burstable-pod<uid with _>.slice) layouts.
var podUIDPattern = regexp.MustCompile(`pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})`)

// PodUIDFromCgroup returns the pod UID in the content of /proc/<pid>/cgroup.
func PodUIDFromCgroup(content string) (string, bool) {
	sc := bufio.NewScanner(strings.NewReader(content))
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, "kubepods") {
			continue
		}
		if m := podUIDPattern.FindStringSubmatch(line); m != nil {
			return strings.ReplaceAll(m[1], "_", "-"), true
		}
	}
	return "", false
}

// ProcPods resolves a process's pod UID from procRoot/<pid>/cgroup (procRoot
// is /proc, or the host's /proc mounted into the agent's container). The
// namespace and name are not in the cgroup: lookup, when non-nil, supplies
// them from the UID (e.g. from the kubelet's pod list).
func ProcPods(procRoot string, lookup func(uid string) (namespace, name string)) PodResolver {
	return func(pid uint32) (Pod, bool) {
		b, err := os.ReadFile(filepath.Join(procRoot, strconv.FormatUint(uint64(pid), 10), "cgroup"))
		if err != nil {
			return Pod{}, false
		}
		uid, ok := PodUIDFromCgroup(string(b))
		if !ok {
			return Pod{}, false
		}
		p := Pod{UID: uid}
		if lookup != nil {
			p.Namespace, p.Name = lookup(uid)
		}
		return p, true
	}
}
