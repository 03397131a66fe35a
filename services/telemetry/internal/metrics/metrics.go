// Package metrics writes the latest GPU readings in the Prometheus text
// format under the dcgm-exporter metric names and labels (gpu, UUID, device,
// modelName, Hostname), plus cluster, workspace and gpr, so that dashboards
// built for dcgm-exporter work unchanged.
package metrics

import (
	"bufio"
	"io"
	"strconv"
	"strings"

	"github.com/open-egs/egs/services/telemetry/internal/fleet"
)

type series struct {
	name, help string
	value      func(g *fleet.GPU) (float64, bool)
}

func u32(v *uint32, scale float64) (float64, bool) {
	if v == nil {
		return 0, false
	}
	return float64(*v) / scale, true
}

// dcgm are the dcgm-exporter fields we can fill from NVML samples.
var dcgm = []series{
	{"DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", func(g *fleet.GPU) (float64, bool) { return u32(g.Sample.GPUUtil, 1) }},
	{"DCGM_FI_DEV_MEM_COPY_UTIL", "Memory utilization (in %).", func(g *fleet.GPU) (float64, bool) { return u32(g.Sample.MemUtil, 1) }},
	{"DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).", func(g *fleet.GPU) (float64, bool) {
		return float64(g.Sample.MemUsedBytes >> 20), g.Sample.MemTotalBytes > 0
	}},
	{"DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB).", func(g *fleet.GPU) (float64, bool) {
		s := &g.Sample
		return float64((s.MemTotalBytes - min(s.MemUsedBytes+s.MemReservedBytes, s.MemTotalBytes)) >> 20), s.MemTotalBytes > 0
	}},
	{"DCGM_FI_DEV_FB_RESERVED", "Framebuffer memory reserved (in MiB).", func(g *fleet.GPU) (float64, bool) {
		return float64(g.Sample.MemReservedBytes >> 20), g.Sample.MemReservedBytes > 0
	}},
	{"DCGM_FI_DEV_POWER_USAGE", "Power draw (in W).", func(g *fleet.GPU) (float64, bool) { return u32(g.Sample.PowerMilliW, 1000) }},
	{"DCGM_FI_DEV_POWER_MGMT_LIMIT", "Power management limit (in W).", func(g *fleet.GPU) (float64, bool) {
		return u32(g.Sample.PowerLimitMW, 1000)
	}},
	{"DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C).", func(g *fleet.GPU) (float64, bool) { return u32(g.Sample.TempC, 1) }},
	{"DCGM_FI_DEV_SM_CLOCK", "SM clock frequency (in MHz).", func(g *fleet.GPU) (float64, bool) { return u32(g.Sample.SMClockMHz, 1) }},
	{"DCGM_FI_DEV_MEM_CLOCK", "Memory clock frequency (in MHz).", func(g *fleet.GPU) (float64, bool) { return u32(g.Sample.MemClockMHz, 1) }},
	{"DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "Total number of single-bit volatile ECC errors.", func(g *fleet.GPU) (float64, bool) {
		if g.Sample.ECCCorrected == nil {
			return 0, false
		}
		return float64(*g.Sample.ECCCorrected), true
	}},
	{"DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "Total number of double-bit volatile ECC errors.", func(g *fleet.GPU) (float64, bool) {
		if g.Sample.ECCUncorrected == nil {
			return 0, false
		}
		return float64(*g.Sample.ECCUncorrected), true
	}},
	{"DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", "Current clock throttle reasons (bit mask).", func(g *fleet.GPU) (float64, bool) {
		return float64(g.Sample.ThrottleReasons), !g.Sample.Lost
	}},
	{"DCGM_FI_DEV_XID_ERRORS", "Value of the last XID error encountered.", func(g *fleet.GPU) (float64, bool) {
		return float64(g.LastXID), !g.Sample.Lost
	}},
}

// Counters are the service's own counters.
type Counters struct {
	Samples uint64 // GPU samples ingested
	Missed  uint64 // sample batches found missing that the stream did not hold
	Reads   uint64 // reads of the sample stream (start, interruptions, gaps)
}

// Write writes every series of every GPU, and the service's own counters.
func Write(w io.Writer, gpus []fleet.GPU, c Counters) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	labels := make([]string, len(gpus))
	for i := range gpus {
		labels[i] = labelSet(&gpus[i])
	}
	for _, s := range dcgm {
		bw.WriteString("# HELP " + s.name + " " + s.help + "\n# TYPE " + s.name + " gauge\n")
		for i := range gpus {
			if v, ok := s.value(&gpus[i]); ok {
				bw.WriteString(s.name + labels[i] + " " + strconv.FormatFloat(v, 'f', -1, 64) + "\n")
			}
		}
	}
	bw.WriteString("# HELP egs_gpu_lost 1 when the GPU fell off the bus.\n# TYPE egs_gpu_lost gauge\n")
	for i := range gpus {
		v := "0"
		if gpus[i].Sample.Lost {
			v = "1"
		}
		bw.WriteString("egs_gpu_lost" + labels[i] + " " + v + "\n")
	}
	bw.WriteString("# HELP egs_gpu_sample_timestamp_seconds Time of the GPU's latest sample.\n# TYPE egs_gpu_sample_timestamp_seconds gauge\n")
	for i := range gpus {
		bw.WriteString("egs_gpu_sample_timestamp_seconds" + labels[i] + " " +
			strconv.FormatFloat(float64(gpus[i].At.UnixMilli())/1000, 'f', 3, 64) + "\n")
	}
	bw.WriteString("# HELP egs_telemetry_gpu_samples_total GPU samples ingested.\n# TYPE egs_telemetry_gpu_samples_total counter\n")
	bw.WriteString("egs_telemetry_gpu_samples_total " + strconv.FormatUint(c.Samples, 10) + "\n")
	bw.WriteString("# HELP egs_telemetry_sample_batches_missed_total Sample batches found missing (a node's sequence jumped) that the stream did not hold either.\n# TYPE egs_telemetry_sample_batches_missed_total counter\n")
	bw.WriteString("egs_telemetry_sample_batches_missed_total " + strconv.FormatUint(c.Missed, 10) + "\n")
	bw.WriteString("# HELP egs_telemetry_sample_stream_reads_total Reads of the sample stream for what the live subscription did not bring.\n# TYPE egs_telemetry_sample_stream_reads_total counter\n")
	bw.WriteString("egs_telemetry_sample_stream_reads_total " + strconv.FormatUint(c.Reads, 10) + "\n")
	return bw.Flush()
}

func labelSet(g *fleet.GPU) string {
	var b strings.Builder
	b.WriteString(`{gpu="`)
	b.WriteString(strconv.Itoa(g.Sample.Index))
	b.WriteString(`",UUID="`)
	b.WriteString(escape(g.Sample.UUID))
	b.WriteString(`",device="nvidia`)
	b.WriteString(strconv.Itoa(g.Sample.Index))
	b.WriteString(`",modelName="`)
	b.WriteString(escape(g.Sample.Name))
	b.WriteString(`",Hostname="`)
	b.WriteString(escape(g.Node))
	b.WriteString(`",cluster="`)
	b.WriteString(escape(g.Cluster))
	b.WriteString(`",workspace="`)
	b.WriteString(escape(g.Workspace))
	b.WriteString(`",gpr="`)
	b.WriteString(escape(g.GPRID))
	if g.Sample.ParentUUID != "" {
		b.WriteString(`",GPU_I_ID="`)
		b.WriteString(escape(g.Sample.UUID))
	}
	b.WriteString(`"}`)
	return b.String()
}

var escaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escape(s string) string { return escaper.Replace(s) }
