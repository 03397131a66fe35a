// Package fleet is the telemetry service's domain: the latest reading of
// every GPU, which GPR and workspace each GPU belongs to, idle detection per
// GPR, threshold alerts with hysteresis, and rollup windows. It is pure:
// time comes from the samples, effects are returned, nothing does I/O. A
// Fleet is safe for concurrent use.
package fleet

import (
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/open-egs/egs/libs/events"
)

// GPR is a provisioned GPR as far as telemetry cares.
type GPR struct {
	ID            string        `json:"gprId"`
	Workspace     string        `json:"workspace"`
	Cluster       string        `json:"cluster"`
	Nodes         []string      `json:"nodes"`
	IdleTimeout   time.Duration `json:"idleTimeout"` // 0: no idle detection
	Enforce       bool          `json:"enforceIdleTimeout"`
	ProvisionedAt time.Time     `json:"provisionedAt"`
	Seq           int           `json:"seq"` // of the GPR event that provisioned it

	reported time.Time // the idle period already reported (its start)
}

// GPU is the latest state of one GPU.
type GPU struct {
	Cluster   string           `json:"cluster"`
	Node      string           `json:"node"`
	Sample    events.GPUSample `json:"sample"`
	At        time.Time        `json:"at"`
	IdleSince time.Time        `json:"idleSince,omitzero"` // zero while busy
	Workspace string           `json:"workspace,omitempty"`
	GPRID     string           `json:"gprId,omitempty"`
	// LastXID is the last critical XID the GPU reported (0: none since the
	// service started), dcgm-exporter's DCGM_FI_DEV_XID_ERRORS.
	LastXID uint64 `json:"lastXid,omitempty"`

	alerts  uint8  // raised alerts: 1<<alertPowerBit, 1<<alertTempBit
	ecc     uint64 // the last uncorrected ECC count seen
	eccSeen bool
}

const (
	alertPowerBit = iota
	alertTempBit
)

// Thresholds are the alert limits of one GPU shape.
type Thresholds struct {
	PowerW float64 // 0: the GPU's power limit
	TempC  float64
}

// Config configures a Fleet.
type Config struct {
	// Default applies to shapes without their own entry in Shapes (keyed by
	// the NVML name, e.g. "NVIDIA H100 80GB HBM3").
	Default Thresholds
	Shapes  map[string]Thresholds
	// Hysteresis is how far below a threshold a reading must fall to clear
	// its alert: a fraction of the threshold (0.05 = 5 %).
	Hysteresis float64
	// Rollup is the first rollup resolution (10s); 0 disables rollups.
	Rollup time.Duration
	// Now is the service's clock (the one Flush is given), which tells how
	// long a node has been silent; nil: time.Now.
	Now func() time.Time
}

// nodeKey names a node; a struct, not a joined string, so that a lookup
// allocates nothing.
type nodeKey struct{ cluster, name string }

type node struct {
	cluster, name string
	gpus          []string // UUIDs in the order of the last batch
	state         []*GPU   // their state, same order: spares a map lookup per sample
	gpr           string
	windows       []*window // one per rollup resolution, open
	// lastAt is the node's latest sample time (its agent's clock), lastSeen
	// when it was applied (the service's clock): their difference is the
	// node's clock as Flush judges it.
	lastAt, lastSeen time.Time
}

// Effects are what one batch caused: events to publish.
type Effects struct {
	Idle    []events.GPRIdle
	Alerts  []events.GPUAlert
	Rollups []events.RollupBatch
}

// Fleet holds the state.
type Fleet struct {
	cfg Config

	mu      sync.RWMutex
	gpus    map[string]*GPU // by UUID
	nodes   map[nodeKey]*node
	gprs    map[string]*GPR // by id
	samples uint64
}

// New returns an empty fleet.
func New(cfg Config) *Fleet {
	return &Fleet{cfg: cfg, gpus: map[string]*GPU{}, nodes: map[nodeKey]*node{}, gprs: map[string]*GPR{}}
}

func (f *Fleet) node(cluster, name string) *node {
	k := nodeKey{cluster, name}
	n := f.nodes[k]
	if n == nil {
		n = &node{cluster: cluster, name: name}
		f.nodes[k] = n
	}
	return n
}

// Provision attributes the GPR's nodes (and their GPUs) to it. Provisioning
// the same GPR again replaces it.
func (f *Fleet) Provision(g GPR) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if old := f.gprs[g.ID]; old != nil {
		f.detach(old)
	}
	g.Nodes = slices.Clone(g.Nodes)
	f.gprs[g.ID] = &g
	for _, name := range g.Nodes {
		n := f.node(g.Cluster, name)
		n.gpr = g.ID
		for _, u := range n.gpus {
			if gpu := f.gpus[u]; gpu != nil {
				gpu.Workspace, gpu.GPRID = g.Workspace, g.ID
			}
		}
	}
}

// Release ends the GPR's attribution; releasing an unknown GPR is harmless.
func (f *Fleet) Release(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if g := f.gprs[id]; g != nil {
		f.detach(g)
		delete(f.gprs, id)
	}
}

func (f *Fleet) detach(g *GPR) {
	for _, name := range g.Nodes {
		n := f.nodes[nodeKey{g.Cluster, name}]
		if n == nil || n.gpr != g.ID {
			continue
		}
		n.gpr = ""
		for _, u := range n.gpus {
			if gpu := f.gpus[u]; gpu != nil {
				gpu.Workspace, gpu.GPRID = "", ""
			}
		}
	}
}

// GPRs returns the provisioned GPRs, by id.
func (f *Fleet) GPRs() []GPR {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]GPR, 0, len(f.gprs))
	for _, g := range f.gprs {
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Samples is the number of GPU samples ingested.
func (f *Fleet) Samples() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.samples
}

// Ingest applies batches in order, under one lock, and returns what they
// caused together. Batches of one node must come in order; an older batch
// than the node's latest updates nothing but the count. The fleet keeps
// copies of the samples (GPUSample values), not the batches.
func (f *Fleet) Ingest(bs ...*events.GPUSampleBatch) Effects {
	now := time.Now
	if f.cfg.Now != nil {
		now = f.cfg.Now
	}
	seen := now()
	f.mu.Lock()
	defer f.mu.Unlock()
	var fx Effects
	for _, b := range bs {
		f.ingest(b, seen, &fx)
	}
	return fx
}

func (f *Fleet) ingest(b *events.GPUSampleBatch, seen time.Time, fx *Effects) {
	n := f.node(b.Cluster, b.Node)
	// A node's batches come in order: the last one is its clock, also after
	// the agent's clock stepped back.
	n.lastAt, n.lastSeen = b.At, seen
	f.samples += uint64(len(b.GPUs))
	var g *GPR
	if n.gpr != "" {
		g = f.gprs[n.gpr]
	}
	n.gpus = n.gpus[:0]
	for i := range b.GPUs {
		s := &b.GPUs[i]
		n.gpus = append(n.gpus, s.UUID)
		var cur *GPU
		if i < len(n.state) && n.state[i].Sample.UUID == s.UUID {
			cur = n.state[i]
		} else {
			if cur = f.gpus[s.UUID]; cur == nil {
				cur = &GPU{Cluster: b.Cluster, Node: b.Node}
				f.gpus[s.UUID] = cur
			}
			if i < len(n.state) {
				n.state[i] = cur
			} else {
				n.state = append(n.state, cur)
			}
		}
		if b.At.Before(cur.At) {
			continue
		}
		if s.Idle() {
			if cur.IdleSince.IsZero() {
				cur.IdleSince = b.At
			}
		} else {
			cur.IdleSince = time.Time{}
		}
		cur.Sample, cur.At = *s, b.At
		cur.Cluster, cur.Node = b.Cluster, b.Node
		if g != nil {
			cur.Workspace, cur.GPRID = g.Workspace, g.ID
		} else {
			cur.Workspace, cur.GPRID = "", ""
		}
		f.thresholds(cur, fx)
	}
	n.state = n.state[:len(b.GPUs)]
	if f.cfg.Rollup > 0 {
		f.roll(n, b, g, fx)
	}
	if g != nil {
		if idle, ok := f.idle(g, b.At); ok {
			fx.Idle = append(fx.Idle, idle)
		}
	}
}

// idle reports g once per idle period: every GPU of every node idle, and for
// at least the GPR's idle timeout (counted from provisioning at the earliest).
func (f *Fleet) idle(g *GPR, at time.Time) (events.GPRIdle, bool) {
	if g.IdleTimeout <= 0 {
		return events.GPRIdle{}, false
	}
	since := g.ProvisionedAt
	var uuids []string
	for _, name := range g.Nodes {
		n := f.nodes[nodeKey{g.Cluster, name}]
		if n == nil || len(n.gpus) == 0 {
			return events.GPRIdle{}, false // a node not heard from yet
		}
		for _, u := range n.gpus {
			gpu := f.gpus[u]
			if gpu == nil || gpu.IdleSince.IsZero() {
				return events.GPRIdle{}, false
			}
			if gpu.IdleSince.After(since) {
				since = gpu.IdleSince
			}
			uuids = append(uuids, u)
		}
	}
	if at.Sub(since) < g.IdleTimeout || g.reported.Equal(since) {
		return events.GPRIdle{}, false
	}
	g.reported = since
	return events.GPRIdle{GPRID: g.ID, Workspace: g.Workspace, IdleSince: since, GPUs: uuids, At: at}, true
}

// IdleEventID is the deterministic id of the idle report of one period.
func IdleEventID(e events.GPRIdle) string {
	return e.GPRID + ".idle." + strconv.FormatInt(e.IdleSince.UnixMilli(), 10)
}

func (f *Fleet) limits(s *events.GPUSample) Thresholds {
	t, ok := f.cfg.Shapes[s.Name]
	if !ok {
		t = f.cfg.Default
	}
	if t.PowerW == 0 && s.PowerLimitMW != nil {
		t.PowerW = float64(*s.PowerLimitMW) / 1000
	}
	return t
}

// thresholds raises and clears power and temperature alerts with
// hysteresis, and raises one alert per XID and per rise of the uncorrected
// ECC count.
func (f *Fleet) thresholds(g *GPU, fx *Effects) {
	s := &g.Sample
	t := f.limits(s)
	check := func(kind string, bit uint8, v *uint32, scale, limit float64) {
		if v == nil || limit <= 0 {
			return
		}
		val := float64(*v) / scale
		raised := g.alerts&(1<<bit) != 0
		switch {
		case !raised && val > limit:
			g.alerts |= 1 << bit
			fx.Alerts = append(fx.Alerts, f.alert(g, kind, "raised", val, limit))
		case raised && val < limit*(1-f.cfg.Hysteresis):
			g.alerts &^= 1 << bit
			fx.Alerts = append(fx.Alerts, f.alert(g, kind, "cleared", val, limit))
		}
	}
	check(events.AlertPower, alertPowerBit, s.PowerMilliW, 1000, t.PowerW)
	check(events.AlertTemperature, alertTempBit, s.TempC, 1, t.TempC)
	for _, x := range s.XIDs {
		g.LastXID = x
		fx.Alerts = append(fx.Alerts, f.alert(g, events.AlertXID, "raised", float64(x), 0))
	}
	if s.ECCUncorrected != nil {
		if g.eccSeen && *s.ECCUncorrected > g.ecc {
			fx.Alerts = append(fx.Alerts, f.alert(g, events.AlertECC, "raised", float64(*s.ECCUncorrected), 0))
		}
		g.ecc, g.eccSeen = *s.ECCUncorrected, true
	}
}

func (f *Fleet) alert(g *GPU, kind, state string, v, limit float64) events.GPUAlert {
	return events.GPUAlert{Cluster: g.Cluster, Node: g.Node, UUID: g.Sample.UUID, Kind: kind, State: state, Value: v,
		Threshold: limit, Workspace: g.Workspace, GPRID: g.GPRID, At: g.At}
}

// Filter selects GPUs; empty fields match everything.
type Filter struct {
	Workspace, GPRID, Cluster, Node string
}

func (q Filter) match(g *GPU) bool {
	return (q.Workspace == "" || q.Workspace == g.Workspace) && (q.GPRID == "" || q.GPRID == g.GPRID) &&
		(q.Cluster == "" || q.Cluster == g.Cluster) && (q.Node == "" || q.Node == g.Node)
}

// Latest returns the GPUs q selects, by cluster, node and index.
func (f *Fleet) Latest(q Filter) []GPU {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []GPU
	for _, g := range f.gpus {
		if q.match(g) {
			out = append(out, *g)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Cluster != b.Cluster {
			return a.Cluster < b.Cluster
		}
		if a.Node != b.Node {
			return a.Node < b.Node
		}
		if a.Sample.Index != b.Sample.Index {
			return a.Sample.Index < b.Sample.Index
		}
		return a.Sample.UUID < b.Sample.UUID
	})
	return out
}

// Metric names of Top.
const (
	MetricPower       = "power"
	MetricTemperature = "temperature"
	MetricUtilization = "utilization"
)

// Value is the metric of a GPU (-1 when the GPU does not report it).
func Value(g *GPU, metric string) float64 {
	var v *uint32
	scale := 1.0
	switch metric {
	case MetricPower:
		v, scale = g.Sample.PowerMilliW, 1000
	case MetricTemperature:
		v = g.Sample.TempC
	case MetricUtilization:
		v = g.Sample.GPUUtil
	}
	if v == nil {
		return -1
	}
	return float64(*v) / scale
}

// Top returns the n GPUs q selects with the highest metric.
func (f *Fleet) Top(q Filter, metric string, n int) []GPU {
	all := f.Latest(q)
	sort.SliceStable(all, func(i, j int) bool { return Value(&all[i], metric) > Value(&all[j], metric) })
	if n > 0 && len(all) > n {
		all = all[:n]
	}
	return all
}
