package fleet

import (
	"math"
	"sort"
	"time"

	"github.com/open-egs/egs/libs/events"
)

// Resolutions are the rollup windows: each closed window of one resolution
// is folded into the next.
var Resolutions = []struct {
	Name string
	Size time.Duration
}{{"10s", 10 * time.Second}, {"1m", time.Minute}, {"1h", time.Hour}}

type acc struct {
	n, sum   float64
	max, min float64
}

func (a *acc) add(v float64, n float64) {
	if a.n == 0 || v > a.max {
		a.max = v
	}
	if a.n == 0 || v < a.min {
		a.min = v
	}
	a.sum += v * n
	a.n += n
}

func (a *acc) merge(b acc) {
	if b.n == 0 {
		return
	}
	if a.n == 0 || b.max > a.max {
		a.max = b.max
	}
	if a.n == 0 || b.min < a.min {
		a.min = b.min
	}
	a.sum += b.sum
	a.n += b.n
}

func (a acc) stat() events.Stat {
	if a.n == 0 {
		return events.Stat{}
	}
	return events.Stat{Avg: math.Round(a.sum/a.n*100) / 100, Max: a.max, Min: a.min}
}

type gpuAcc struct {
	samples                int
	util, mem, power, temp acc
}

type window struct {
	start time.Time
	gpus  []gpuWindow // in the order the node reports them
	owner *events.GPUOwnerRef
}

type gpuWindow struct {
	uuid string
	gpuAcc
}

// gpu returns the accumulator of uuid, the i-th GPU of the node's batch
// (i < 0: position unknown). A node has a few GPUs (MIG instances: a few
// dozen), so a search beats a map.
func (w *window) gpu(i int, uuid string) *gpuAcc {
	if i >= 0 && i < len(w.gpus) && w.gpus[i].uuid == uuid {
		return &w.gpus[i].gpuAcc
	}
	for j := range w.gpus {
		if w.gpus[j].uuid == uuid {
			return &w.gpus[j].gpuAcc
		}
	}
	w.gpus = append(w.gpus, gpuWindow{uuid: uuid})
	return &w.gpus[len(w.gpus)-1].gpuAcc
}

func (w *window) batch(n *node, res string) events.RollupBatch {
	out := events.RollupBatch{Cluster: n.cluster, Node: n.name, Res: res, Start: w.start.UTC(), Owner: w.owner}
	out.GPUs = make([]events.GPURollup, 0, len(w.gpus))
	for i := range w.gpus {
		a := &w.gpus[i]
		out.GPUs = append(out.GPUs, events.GPURollup{UUID: a.uuid, Samples: a.samples, Util: a.util.stat(),
			MemUsed: a.mem.stat(), PowerW: a.power.stat(), TempC: a.temp.stat()})
	}
	sort.Slice(out.GPUs, func(i, j int) bool { return out.GPUs[i].UUID < out.GPUs[j].UUID })
	return out
}

// roll adds a batch to the node's open 10s window, closing (and cascading)
// windows the batch has moved past.
func (f *Fleet) roll(n *node, b *events.GPUSampleBatch, g *GPR, fx *Effects) {
	if n.windows == nil {
		n.windows = make([]*window, len(Resolutions))
	}
	start := b.At.Truncate(f.cfg.Rollup)
	if w := n.windows[0]; w != nil && start.After(w.start) {
		f.close(n, 0, fx)
	} else if w != nil && start.Before(w.start) {
		return // late batch of a closed window
	}
	w := n.windows[0]
	if w == nil {
		w = &window{start: start, gpus: make([]gpuWindow, 0, len(b.GPUs))}
		n.windows[0] = w
	}
	if g != nil {
		w.owner = &events.GPUOwnerRef{Workspace: g.Workspace, GPRID: g.ID}
	} else {
		w.owner = nil
	}
	for i := range b.GPUs {
		s := &b.GPUs[i]
		if s.Lost {
			continue
		}
		a := w.gpu(i, s.UUID)
		a.samples++
		if s.GPUUtil != nil {
			a.util.add(float64(*s.GPUUtil), 1)
		}
		a.mem.add(float64(s.MemUsedBytes), 1)
		if s.PowerMilliW != nil {
			a.power.add(float64(*s.PowerMilliW)/1000, 1)
		}
		if s.TempC != nil {
			a.temp.add(float64(*s.TempC), 1)
		}
	}
}

// close emits window level of n and folds it into the next level, closing
// that one first when this window belongs to a later one.
func (f *Fleet) close(n *node, level int, fx *Effects) {
	w := n.windows[level]
	if w == nil {
		return
	}
	n.windows[level] = nil
	fx.Rollups = append(fx.Rollups, w.batch(n, Resolutions[level].Name))
	if level+1 >= len(Resolutions) {
		return
	}
	start := w.start.Truncate(Resolutions[level+1].Size)
	if up := n.windows[level+1]; up != nil && start.After(up.start) {
		f.close(n, level+1, fx)
	}
	up := n.windows[level+1]
	if up == nil {
		up = &window{start: start}
		n.windows[level+1] = up
	}
	up.owner = w.owner
	for i := range w.gpus {
		a := &w.gpus[i]
		u := up.gpu(i, a.uuid)
		u.samples += a.samples
		u.util.merge(a.util)
		u.mem.merge(a.mem)
		u.power.merge(a.power)
		u.temp.merge(a.temp)
	}
}

// Flush closes the windows that ended more than grace before now, for
// nodes that stopped reporting. Rollups of the still-open higher levels
// stay open until they end too.
func (f *Fleet) Flush(now time.Time, grace time.Duration) []events.RollupBatch {
	f.mu.Lock()
	defer f.mu.Unlock()
	var fx Effects
	for _, n := range f.nodes {
		// The node's clock now: its last sample's time plus the time since
		// it was applied. Its own clock, so that an agent whose clock lags
		// the service's, or batches read back after a restart, do not have
		// their windows closed before their samples are in.
		nodeNow := now
		if !n.lastSeen.IsZero() {
			nodeNow = n.lastAt.Add(now.Sub(n.lastSeen))
		}
		for level, r := range Resolutions {
			if level >= len(n.windows) {
				break
			}
			if w := n.windows[level]; w != nil && nodeNow.Sub(w.start.Add(r.Size)) > grace {
				f.close(n, level, &fx)
			}
		}
	}
	return fx.Rollups
}

// Restore folds rollups read back from the stream (after a restart) into
// the open windows of the next level, so that the 1m and 1h windows in
// progress lose nothing. Each must be a closed window of level res.
func (f *Fleet) Restore(r events.RollupBatch) {
	f.mu.Lock()
	defer f.mu.Unlock()
	level := -1
	for i, x := range Resolutions {
		if x.Name == r.Res {
			level = i
		}
	}
	if level < 0 || level+1 >= len(Resolutions) {
		return
	}
	n := f.node(r.Cluster, r.Node)
	if n.windows == nil {
		n.windows = make([]*window, len(Resolutions))
	}
	start := r.Start.Truncate(Resolutions[level+1].Size)
	up := n.windows[level+1]
	if up == nil || start.After(up.start) {
		up = &window{start: start}
		n.windows[level+1] = up
	} else if start.Before(up.start) {
		return
	}
	up.owner = r.Owner
	for _, g := range r.GPUs {
		u := up.gpu(-1, g.UUID)
		u.samples += g.Samples
		n := float64(g.Samples)
		for _, p := range []struct {
			a *acc
			s events.Stat
		}{{&u.util, g.Util}, {&u.mem, g.MemUsed}, {&u.power, g.PowerW}, {&u.temp, g.TempC}} {
			p.a.merge(acc{n: n, sum: p.s.Avg * n, max: p.s.Max, min: p.s.Min})
		}
	}
}
