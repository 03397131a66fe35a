package samplejson_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/services/telemetry/internal/samplejson"
)

func p32(v uint32) *uint32 { return &v }
func p64(v uint64) *uint64 { return &v }

// event is a batch in the node agent's wire format.
func event(t testing.TB) []byte {
	t.Helper()
	at := time.Date(2026, 11, 27, 12, 0, 1, 500, time.UTC)
	b := events.GPUSampleBatch{Cluster: "c1", Node: "node-1", Boot: "b1", Seq: 7, At: at, Dropped: 3, GPUs: []events.GPUSample{
		{UUID: "GPU-0", Index: 0, Name: "NVIDIA H100 80GB HBM3", GPUUtil: p32(0), MemUtil: p32(1), MemUsedBytes: 1 << 30,
			MemTotalBytes: 80 << 30, MemReservedBytes: 480 << 20, PowerMilliW: p32(70_000), PowerLimitMW: p32(700_000), TempC: p32(31), SMClockMHz: p32(1980),
			MemClockMHz: p32(2619), ECCCorrected: p64(0), ECCUncorrected: p64(2), ThrottleReasons: 4, XIDs: []uint64{79},
			Processes: []events.GPUProcess{{PID: 42, UsedMemBytes: 1 << 20, PodUID: "u", PodNamespace: "ns", PodName: "p"}}},
		{UUID: "MIG-1", Index: 1, Name: "NVIDIA A100-SXM4-40GB MIG 1g.5gb", ParentUUID: "GPU-1", MemUsedBytes: 5},
		{UUID: "GPU-2", Index: 2, Lost: true},
	}}
	ev, err := bus.NewEvent("c1.node-1.b1.7", "egs/nodeagent", events.EventType("telemetry", "gpu"), "node-1", at, b)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// reference is what encoding/json makes of data.
func reference(data []byte) (events.GPUSampleBatch, error) {
	var env struct {
		Data events.GPUSampleBatch `json:"data"`
	}
	err := json.Unmarshal(data, &env)
	return env.Data, err
}

func check(t *testing.T, d *samplejson.Decoder, data []byte) {
	t.Helper()
	want, wantErr := reference(data)
	var got events.GPUSampleBatch
	// A batch decoded before must leave nothing behind.
	if err := d.Decode(event(t), &got); err != nil {
		t.Fatal(err)
	}
	err := d.Decode(data, &got)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("Decode(%q) error = %v, encoding/json: %v", data, err, wantErr)
	}
	if err != nil {
		var te *json.UnmarshalTypeError
		if !errors.As(wantErr, &te) && err.Error() != wantErr.Error() {
			t.Errorf("Decode(%q) error = %v, encoding/json: %v", data, err, wantErr)
		}
		return
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Decode(%q) differs from encoding/json (-want +got):\n%s", data, diff)
	}
}

func TestDecode(t *testing.T) {
	wire := string(event(t))
	tests := map[string]string{
		"wire format":               wire,
		"extra attributes":          `{"specversion":"1.0","ext":{"a":[1,-2.5e3,true,false,null,"x\"\u00e9"]},"data":{"node":"n","gpus":[{"uuid":"u","future":{"x":[]}}]}}`,
		"white space":               " {\n\t\"data\" : { \"seq\" : 1 , \"gpus\" : [ { \"index\" : -3 } ] } } \n",
		"escaped string":            `{"data":{"node":"n\u00e9","gpus":[{"uuid":"a\"b"}]}}`,
		"key in another case":       `{"data":{"Node":"n","GPUS":[{"UUID":"u","GpuUtil":5}]}}`,
		"null data":                 `{"data":null}`,
		"null pointer":              `{"data":{"gpus":[{"gpuUtil":null,"xids":null}]}}`,
		"duplicate key":             `{"data":{"node":"a","node":"b","gpus":[{"uuid":"x"}],"gpus":[]}}`,
		"no data":                   `{"id":"x"}`,
		"empty gpus":                `{"data":{"gpus":[]}}`,
		"utf-8":                     `{"data":{"gpus":[{"name":"Grafikkarte ü"}]}}`,
		"invalid utf-8":             "{\"data\":{\"node\":\"\xff\"}}",
		"fraction into uint":        `{"data":{"seq":1.5}}`,
		"exponent into uint":        `{"data":{"seq":1e3}}`,
		"negative uint":             `{"data":{"seq":-1}}`,
		"uint32 overflow":           `{"data":{"gpus":[{"tempC":4294967296}]}}`,
		"uint64 overflow":           `{"data":{"seq":18446744073709551616}}`,
		"leading zero":              `{"data":{"seq":01}}`,
		"string into uint":          `{"data":{"seq":"1"}}`,
		"bad time":                  `{"data":{"at":"yesterday"}}`,
		"trailing data":             `{"data":{}} x`,
		"truncated":                 wire[:len(wire)/2],
		"invalid skipped literal":   `{"time":nul,"data":{}}`,
		"invalid skipped escape":    `{"x":"\q","data":{}}`,
		"invalid skipped number":    `{"x":1.,"data":{}}`,
		"control char in string":    "{\"data\":{\"node\":\"a\tb\"}}",
		"array at top":              `[1]`,
		"empty":                     ``,
		"deeply nested extra":       `{"x":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `,"data":{"seq":2}}`,
		"lost as string":            `{"data":{"gpus":[{"lost":"true"}]}}`,
		"processes with extra keys": `{"data":{"gpus":[{"processes":[{"pid":1,"cgroup":"/x","podName":"p"}]}]}}`,
	}
	d := samplejson.NewDecoder()
	for name, data := range tests {
		t.Run(name, func(t *testing.T) { check(t, d, []byte(data)) })
	}
}

// TestDecodeKeepsSamples pins that samples of an earlier batch are not
// overwritten by the next Decode (the fleet keeps copies of them).
func TestDecodeKeepsSamples(t *testing.T) {
	d := samplejson.NewDecoder()
	var b events.GPUSampleBatch
	if err := d.Decode([]byte(`{"data":{"gpus":[{"uuid":"a","gpuUtil":7,"xids":[1]}]}}`), &b); err != nil {
		t.Fatal(err)
	}
	kept := b.GPUs[0]
	if err := d.Decode([]byte(`{"data":{"gpus":[{"uuid":"b","gpuUtil":9,"xids":[2]}]}}`), &b); err != nil {
		t.Fatal(err)
	}
	if kept.UUID != "a" || *kept.GPUUtil != 7 || kept.XIDs[0] != 1 {
		t.Errorf("kept sample changed to %+v", kept)
	}
}

// TestDecodeNodeHints pins that the per-node hints of the last batch's
// strings never leak into a batch whose GPUs differ: reordered, renamed,
// fewer, more, or another cluster's node of the same name.
func TestDecodeNodeHints(t *testing.T) {
	d := samplejson.NewDecoder()
	batches := []string{
		`{"data":{"cluster":"a","node":"n","gpus":[{"uuid":"GPU-1","name":"H100"},{"uuid":"GPU-2","name":"H100"}]}}`,
		`{"data":{"cluster":"a","node":"n","gpus":[{"uuid":"GPU-2","name":"H100"},{"uuid":"GPU-1","name":"A100"}]}}`,
		`{"data":{"cluster":"b","node":"n","gpus":[{"uuid":"GPU-9","name":"L4"}]}}`,
		`{"data":{"cluster":"a","node":"n","gpus":[{"uuid":"GPU-1","name":"H100"},{"uuid":"GPU-2","name":"H100"},{"uuid":"GPU-3"}]}}`,
		`{"data":{"gpus":[{"uuid":"GPU-4","name":"H100"}],"node":"n","cluster":"a"}}`,
		`{"data":{"cluster":"a","node":"n","gpus":[{"uuid":"GPU-1","name":"H100"},{"uuid":"GPU-2","name":"H100"}]}}`,
	}
	for _, data := range batches {
		check(t, d, []byte(data))
		check(t, d, []byte(data)) // again, now with the hints it left
	}
}

// TestDecodeKeyOrder pins the keys the fast path does not expect: out of
// order, repeated, in another case, unknown, with white space.
func TestDecodeKeyOrder(t *testing.T) {
	d := samplejson.NewDecoder()
	for _, data := range []string{
		`{"data":{"gpus":[{"tempC":5,"uuid":"a","gpuUtil":3,"index":2}]}}`,
		`{"data":{"gpus":[{"uuid":"a","gpuUtil":3,"uuid":"b","gpuUtil":4}]}}`,
		`{"data":{"gpus":[{"uuid":"a","GpuUtil":3}]}}`,
		`{"data":{"gpus":[{"uuid":"a","other":[1,{"x":2}],"gpuUtil":3}]}}`,
		`{"data":{"gpus":[{ "uuid" : "a" , "gpuUtil" : 3 }]}}`,
		`{"data":{"gpus":[{"uuid":"a","gpuUtil":3,"xids":[1,2],"processes":[{"pid":1}],"tempC":9}]}}`,
		`{"data":{"gpus":[{"uuid":"a","gpuUtil"3}]}}`,
		`{"data":{"gpus":[{"uuid":"a","gpuUtil":}]}}`,
	} {
		check(t, d, []byte(data))
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(event(f))
	f.Add([]byte(`{"data":{"gpus":[{"uuid":"u","gpuUtil":5,"processes":[{"pid":1}]}]}}`))
	f.Add([]byte(`{"x":[1,{"y":"\u0041"}],"data":{"seq":1,"at":"2026-01-01T00:00:00Z"}}`))
	d := samplejson.NewDecoder()
	f.Fuzz(func(t *testing.T, data []byte) { check(t, d, data) })
}

func BenchmarkDecode(b *testing.B) {
	data := event(b)
	d := samplejson.NewDecoder()
	var batch events.GPUSampleBatch
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Decode(data, &batch); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeEncodingJSON(b *testing.B) {
	data := event(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reference(data); err != nil {
			b.Fatal(err)
		}
	}
}
