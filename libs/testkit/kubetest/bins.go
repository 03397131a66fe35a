package kubetest

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// VersionsFile is where the control plane's versions are pinned, relative to
// the repository root.
const VersionsFile = "scripts/kube/versions.env"

// BinDir is the directory of the cached binaries: $EGS_KUBE_BIN_DIR when set,
// else ${EGS_KUBE_CACHE:-$HOME/.cache/egs/kube}/<KUBE_VERSION>-etcd-<ETCD_VERSION>,
// the versions read from VersionsFile of the repository around the working
// directory (as scripts/kube-bins.sh computes it).
func BinDir() (string, error) {
	if d := os.Getenv("EGS_KUBE_BIN_DIR"); d != "" {
		return d, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	root, err := repoRoot(wd)
	if err != nil {
		return "", err
	}
	v, err := readVersions(filepath.Join(root, VersionsFile))
	if err != nil {
		return "", err
	}
	cache := os.Getenv("EGS_KUBE_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("home directory for the kube cache: %w", err)
		}
		cache = filepath.Join(home, ".cache", "egs", "kube")
	}
	return filepath.Join(cache, v["KUBE_VERSION"]+"-etcd-"+v["ETCD_VERSION"]), nil
}

// repoRoot walks up from dir to the directory that holds VersionsFile.
func repoRoot(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, VersionsFile)); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no %s above %s (set EGS_KUBE_BIN_DIR): %w", VersionsFile, dir, ErrNoBinaries)
		}
	}
}

// readVersions parses KEY=VALUE lines; # starts a comment.
func readVersions(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read versions: %w", err)
	}
	defer func() { _ = f.Close() }()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s: malformed line %q", path, line)
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if out["KUBE_VERSION"] == "" || out["ETCD_VERSION"] == "" {
		return nil, errors.New(path + ": KUBE_VERSION and ETCD_VERSION are required")
	}
	return out, nil
}
