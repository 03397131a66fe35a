#!/usr/bin/env bash
# Runs the node agent against a real NVIDIA driver, with the telemetry service
# behind it (services/standalone/internal/realnvml), and keeps what it read.
#
#   scripts/real-nvml.sh build [dir]      build the test binaries (cgo) into dir (default bin/real-nvml)
#   scripts/real-nvml.sh run [dir] [out]  on a GPU machine: run them, writing readings, /metrics,
#                                         nvidia-smi's view of the same seconds and the logs into out
#
# The machine that runs needs the NVIDIA driver (libnvidia-ml.so.1) and, for
# the load phase, python3 with PyTorch; Go is needed only to build.
set -euo pipefail
cd "$(dirname "$0")/.."
cmd=${1:-}
dir=${2:-bin/real-nvml}
case "$cmd" in
build)
	mkdir -p "$dir"
	(cd services/standalone && CGO_ENABLED=1 go test -c -ldflags='-s -w' -o "../../$dir/realnvml.test" ./internal/realnvml/)
	(cd services/telemetry && CGO_ENABLED=1 go test -c -ldflags='-s -w' -o "../../$dir/telemetry.test" ./service/)
	ls -l "$dir"
	;;
run)
	out=${3:-$dir/out}
	mkdir -p "$out"
	nvidia-smi -q >"$out/nvidia-smi-q.txt" 2>&1 || true
	q=timestamp,index,uuid,name,utilization.gpu,utilization.memory,memory.used,memory.total,power.draw,enforced.power.limit,temperature.gpu,clocks.sm,clocks.mem,ecc.errors.corrected.volatile.total,ecc.errors.uncorrected.volatile.total,clocks_event_reasons.active
	nvidia-smi --query-gpu=$q --format=csv -lms 1000 >"$out/nvidia-smi.csv" 2>&1 &
	smi=$!
	load=
	if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
		# 15 s idle first (the agent's first readings), then 25 s of matrix products, then exit.
		python3 -c '
import time, torch
time.sleep(15)
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
end = time.time() + 25
while time.time() < end:
    for _ in range(20): a @ a
    torch.cuda.synchronize()
' &
		load=$!
	fi
	EGS_REAL_NVML=1 EGS_REAL_NVML_OUT="$out" EGS_REAL_NVML_LOAD_PID="$load" \
		"$dir/realnvml.test" -test.run TestRealNVML -test.v -test.timeout 5m 2>&1 | tee "$out/test.log"
	rc=${PIPESTATUS[0]}
	kill "$smi" 2>/dev/null || true
	exit "$rc"
	;;
*)
	sed -n '2,10p' "$0"
	exit 2
	;;
esac
