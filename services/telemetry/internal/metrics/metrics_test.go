package metrics_test

import (
	"strings"
	"testing"
	"time"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/services/telemetry/internal/fleet"
	"github.com/open-egs/egs/services/telemetry/internal/metrics"
)

func TestWrite(t *testing.T) {
	util, power, temp := uint32(87), uint32(512_500), uint32(71)
	gpus := []fleet.GPU{{Cluster: "worker-1", Node: "w1-h100-0", At: time.Unix(1700000000, 0), Workspace: "team-a", GPRID: "gpr-1",
		Sample: events.GPUSample{UUID: "GPU-1", Index: 3, Name: `NVIDIA "H100"`, GPUUtil: &util, PowerMilliW: &power, TempC: &temp,
			MemUsedBytes: 2 << 30, MemTotalBytes: 80 << 30, MemReservedBytes: 480 << 20}}}
	var b strings.Builder
	if err := metrics.Write(&b, gpus, metrics.Counters{Samples: 42, Missed: 3}); err != nil {
		t.Fatal(err)
	}
	labels := `{gpu="3",UUID="GPU-1",device="nvidia3",modelName="NVIDIA \"H100\"",Hostname="w1-h100-0",cluster="worker-1",workspace="team-a",gpr="gpr-1"}`
	for _, want := range []string{
		"# TYPE DCGM_FI_DEV_GPU_UTIL gauge\n",
		"DCGM_FI_DEV_GPU_UTIL" + labels + " 87\n",
		"DCGM_FI_DEV_POWER_USAGE" + labels + " 512.5\n",
		"DCGM_FI_DEV_GPU_TEMP" + labels + " 71\n",
		"DCGM_FI_DEV_FB_USED" + labels + " 2048\n",
		"DCGM_FI_DEV_FB_FREE" + labels + " 79392\n", // total - used - reserved, as DCGM counts it
		"DCGM_FI_DEV_FB_RESERVED" + labels + " 480\n",
		"DCGM_FI_DEV_XID_ERRORS" + labels + " 0\n", // none yet, as dcgm-exporter writes it
		"egs_telemetry_gpu_samples_total 42\n",
		"egs_telemetry_sample_batches_missed_total 3\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(b.String(), "DCGM_FI_DEV_SM_CLOCK{") {
		t.Error("a reading the GPU did not report was written")
	}
}
