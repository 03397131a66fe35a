#!/usr/bin/env bash
# Walks one GPR through its life against a running product (make run):
# auth → workspace → inventory → GPR → Successful → early release → EarlyReleased.
# Usage: scripts/demo.sh [base-url] [api-key]
set -euo pipefail
base=${1:-http://127.0.0.1:8080}
key=${2:-$(cat "${EGS_DATA_DIR:-./.egs}/bootstrap-api-key")}
api="$base/api/v1"
json() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval("d"+sys.argv[1]))' "$1"; }
call() { # method path [body]
  if [ $# -ge 3 ]; then
    curl -sS -X "$1" "$api$2" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d "$3"
  else
    curl -sS -X "$1" "$api$2" -H "Authorization: Bearer $token"
  fi
}

token=$(curl -sS -X POST "$api/auth" -H 'Content-Type: application/json' -d "{\"apiKey\":\"$key\"}" | json '["data"]["token"]')
ws="demo-$RANDOM"
echo "workspace $ws:"; call POST /slice-workspace "{\"workspaceName\":\"$ws\",\"clusters\":[\"worker-1\"],\"namespaces\":[\"$ws\"],\"username\":\"demo\",\"email\":\"demo@example.com\"}"; echo
echo "its inventory:"; call GET "/inventory?sliceName=$ws"; echo
gpr=$(call POST /gpr "{\"gprName\":\"demo\",\"sliceName\":\"$ws\",\"clusterName\":\"\",\"preferredClusters\":null,
  \"enableAutoClusterSelection\":true,\"enableAutoGpuSelection\":true,\"numberOfGPUs\":8,\"numberOfGPUNodes\":1,
  \"instanceType\":\"\",\"gpuShape\":\"\",\"memoryPerGpu\":40,\"exitDuration\":\"0d1h0m\",\"priority\":150,
  \"idleTimeOutDuration\":null,\"enforceIdleTimeOut\":false,\"enableEviction\":null,\"requeueOnFailure\":null}" | json '["data"]["gprId"]')
echo "GPR $gpr"
for _ in $(seq 50); do
  status=$(call GET "/gpr?gprId=$gpr" | json '["data"]["status"]["provisioningStatus"]')
  [ "$status" = Successful ] && break
  sleep 0.1
done
echo "status: $status"
call PUT /gpr "{\"gprId\":\"$gpr\",\"earlyRelease\":true}" >/dev/null
sleep 0.5
echo "after early release: $(call GET "/gpr?gprId=$gpr" | json '["data"]["status"]["provisioningStatus"]')"
