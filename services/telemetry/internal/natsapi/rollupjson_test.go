package natsapi

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
)

// busBytes is what bus.Publisher sends for r: the envelope encoding/json
// writes around the data bus.NewEvent encodes.
func busBytes(t *testing.T, id string, r events.RollupBatch) ([]byte, error) {
	t.Helper()
	ev, err := bus.NewEvent(id, Source, events.EventType("telemetry", "rollup"), r.Node, r.Start, r)
	if err != nil {
		return nil, err
	}
	return json.Marshal(ev)
}

func randomRollup(rng *rand.Rand) events.RollupBatch {
	floats := []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 0.01, -0.07, 0.29, 1e15 - 1, 1e15, 999999999999999.9, 4503599627370497, 1e14 + 0.25, 0.5, 42.25, 300.001, 1e-7, 3e-9, 1e21, 2.5e22, -1e-7, 85899345920, 1.0 / 3,
		math.MaxFloat64, math.SmallestNonzeroFloat64, 99.99, 1234567.89}
	f := func() float64 {
		switch rng.IntN(6) {
		case 0:
			return floats[rng.IntN(len(floats))]
		case 1: // whole
			return math.Round((rng.Float64() - 0.3) * math.Pow(10, float64(rng.IntN(17))))
		case 2: // tenths, hundredths, thousandths
			return math.Round((rng.Float64()-0.3)*1e6) / math.Pow(10, float64(1+rng.IntN(3)))
		case 3: // anything
			return (rng.Float64() - 0.3) * math.Pow(10, float64(rng.IntN(40)-20))
		default: // an average as fleet rounds it
			return math.Round(rng.Float64()*1e6) / 100
		}
	}
	stat := func() events.Stat { return events.Stat{Avg: f(), Max: f(), Min: f()} }
	r := events.RollupBatch{Cluster: "c-1", Node: "node.a-7", Res: "10s",
		Start: time.Unix(1_700_000_000+rng.Int64N(1e8), rng.Int64N(3)*int64(time.Millisecond)*337).UTC()}
	switch rng.IntN(4) {
	case 0: // nil GPUs: "null"
	case 1:
		r.GPUs = []events.GPURollup{}
	default:
		for i := range rng.IntN(9) + 1 {
			r.GPUs = append(r.GPUs, events.GPURollup{UUID: "GPU-" + string(rune('a'+i)) + "-1f2e", Samples: rng.IntN(4000),
				Util: stat(), MemUsed: stat(), PowerW: stat(), TempC: stat()})
		}
	}
	if rng.IntN(2) == 0 {
		r.Owner = &events.GPUOwnerRef{Workspace: "ws-1", GPRID: "gpr-" + string(rune('a'+rng.IntN(26)))}
	}
	return r
}

// TestRollupMsgMatchesBus checks that the fast encoder writes exactly what
// the bus path would, and declines (ok false) whatever it does not write.
func TestRollupMsgMatchesBus(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var buf []byte
	for i := range 20000 {
		r := randomRollup(rng)
		id := "rollup.10s.c-1.node_a-7." + time.Now().Format("150405")
		want, err := busBytes(t, id, r)
		if err != nil {
			t.Fatal(err)
		}
		msg, b, ok := rollupMsg("egs.telemetry.v1.rollup.10s.c-1.node_a-7", id, &r, buf)
		buf = b
		if !ok {
			t.Fatalf("case %d: fast path declined %+v", i, r)
		}
		if string(msg.Data) != string(want) {
			t.Fatalf("case %d:\n got %s\nwant %s", i, msg.Data, want)
		}
		if msg.Header.Get(bus.HeaderID) != id || msg.Header.Get(bus.HeaderSubject) != r.Node ||
			msg.Header.Get(bus.HeaderType) != events.EventType("telemetry", "rollup") {
			t.Fatalf("case %d: headers %v", i, msg.Header)
		}
	}
}

func TestRollupMsgDeclines(t *testing.T) {
	base := events.RollupBatch{Cluster: "c", Node: "n", Res: "10s", Start: time.Unix(1_700_000_000, 0).UTC(),
		GPUs: []events.GPURollup{{UUID: "GPU-1"}}}
	cases := map[string]func(r *events.RollupBatch){
		"html in a string":   func(r *events.RollupBatch) { r.Node = "a<b" },
		"quote in a string":  func(r *events.RollupBatch) { r.GPUs[0].UUID = `x"y` },
		"non-ASCII":          func(r *events.RollupBatch) { r.Cluster = "zürich" },
		"NaN":                func(r *events.RollupBatch) { r.GPUs[0].Util.Avg = math.NaN() },
		"infinity":           func(r *events.RollupBatch) { r.GPUs[0].TempC.Max = math.Inf(1) },
		"year beyond 9999":   func(r *events.RollupBatch) { r.Start = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
		"zone other than Z":  func(r *events.RollupBatch) { r.Start = r.Start.In(time.FixedZone("x", 3600)) },
		"owner with escapes": func(r *events.RollupBatch) { r.Owner = &events.GPUOwnerRef{Workspace: "a&b"} },
	}
	for name, mod := range cases {
		r := base
		r.GPUs = append([]events.GPURollup(nil), base.GPUs...)
		mod(&r)
		if _, _, ok := rollupMsg("s", "id", &r, nil); ok {
			t.Errorf("%s: fast path did not decline", name)
		}
	}
}

func BenchmarkRollupMsg(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	r := randomRollup(rng)
	for len(r.GPUs) < 8 {
		r = randomRollup(rng)
	}
	b.Run("fast", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			_, buf, _ = rollupMsg("s", "id", &r, buf)
		}
	})
	b.Run("bus", func(b *testing.B) {
		for b.Loop() {
			ev, _ := bus.NewEvent("id", Source, "t", r.Node, r.Start, r)
			_, _ = json.Marshal(ev)
		}
	})
}
