#!/usr/bin/env bash
# On the GPU machine (after device-e2e-pack.sh here), from <pack>/src: unpacks Node and node_modules,
# builds the addon, starts the carried redis-server on loopback, then
#   1. gpu-worker-e2e.ts: `detq worker --engine torch --device 0` labels a job from s3rver end to end;
#   2. `detq worker --engine torch --gpus all`: the supervisor finds the GPUs through the addon, starts a
#      worker per GPU, and SIGTERM drains them (exit 0).
# Logs go to $OUT. Exits non-zero when a step fails.
set -uo pipefail
cd "$(dirname "$0")/../.."
pack=$(cd .. && pwd)
OUT=${OUT:-/tmp/detq-out}
mkdir -p "$OUT" .run/bin
[ -x .run/bin/node ] || { xz -dc "$pack/bundle/node.xz" > .run/bin/node && chmod +x .run/bin/node; }
tar -xJf "$pack/bundle/nm.tar.xz"
tar -C .run -xJf "$pack/bundle/redis.tar.xz"
export PATH=$PWD/.run/bin:$PATH
echo "== $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1); node $(node --version)"
detq() { node apps/cli/bin/detq.js "$@"; }

if [ ! -f native/build/Release/detq_native.node ]; then
  time node native/scripts/build.mjs --CDCMAKE_CUDA_ARCHITECTURES=90 > "$OUT/build.log" 2>&1 || { tail -60 "$OUT/build.log"; exit 1; }
fi
detq info --json > "$OUT/info.json" && grep -A3 '"torch"' "$OUT/info.json"

port=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
r=$PWD/.run/redis
"$r/lib/ld-linux-x86-64.so.2" --library-path "$r/lib" "$r/bin/redis-server" --port "$port" --bind 127.0.0.1 \
  --save '' --appendonly no --maxmemory-policy noeviction > "$OUT/redis.log" 2>&1 &
redis_pid=$!
trap 'kill $redis_pid 2>/dev/null' EXIT
export REDIS_URL=redis://127.0.0.1:$port
node -e "
  const net=require('net'); const end=Date.now()+30000;
  (function ping(){ const s=net.connect($port,'127.0.0.1',()=>s.write('PING\r\n')); s.on('data',d=>{s.destroy(); process.exit(String(d).startsWith('+PONG')?0:1)});
    s.on('error',()=>{ if(Date.now()>end) process.exit(1); setTimeout(ping,200) }) })()" || { echo "redis-server did not start"; cat "$OUT/redis.log"; exit 1; }

status=0
echo "== 1. detq worker --engine torch --device 0, one job from s3rver"
timeout 300 node --import tsx infra/scripts/gpu-worker-e2e.ts --engine torch --device 0 \
  --model "$pack/model/yolo11n-cuda-fp32.torchscript" --images "$pack/img" 2>&1 | grep -v -E 'NodeVersionSupportWarning|node >=22|a.co/|trace-warnings|^$|AWS SDK|versions published|continue receiving|security updates' | tee "$OUT/e2e.log"
[ "${PIPESTATUS[0]}" = 0 ] || status=1

echo "== 2. detq worker --engine torch --gpus all: start, ready, SIGTERM"
DETQ_QUEUE_PREFIX="{detq-sup}" DETQ_MODEL="$pack/model/yolo11n-cuda-fp32.torchscript" \
  node apps/cli/bin/detq.js worker --engine torch --gpus all > "$OUT/supervisor.log" 2>&1 &
sup=$!
for _ in $(seq 1 240); do grep -q 'concurrency' "$OUT/supervisor.log" && break; sleep 0.5; done
kill -TERM $sup; wait $sup; code=$?
cat "$OUT/supervisor.log"
echo "supervisor exit: $code"
[ "$code" = 0 ] && grep -q '\[gpu0\] detq worker: .* on torch' "$OUT/supervisor.log" || status=1
echo "== result: $([ $status = 0 ] && echo PASSED || echo FAILED)"
exit $status
