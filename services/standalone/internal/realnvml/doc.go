// Package realnvml holds one test, run by hand on a machine with an NVIDIA
// GPU and driver: the node agent reads the real NVML library and publishes to
// an embedded NATS server, the telemetry service ingests the batches, and the
// test checks what arrives (latest readings, processes, idle, rollups,
// /metrics). It is skipped unless EGS_REAL_NVML=1; scripts/real-nvml.sh
// builds and runs it, and docs/telemetry.md records what it read.
package realnvml
