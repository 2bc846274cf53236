#!/usr/bin/env bash
# Runs on the GPU machine through the `run` tool, from the repository root, after device-pack.sh here.
#   phase a: unpack, build the addon, kernel + engine tests, compute-sanitizer memcheck, engine-only bench
#   phase b: (machine still warm; carries the rest of coco128) the whole GPU suite + end-to-end bench
# Logs go to $OUT. Unpacked files live in ignored folders that stay while the machine stays warm.
set -uo pipefail
phase=${1:-a}
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/detq-out}
mkdir -p "$OUT"
run=.device/run
if [ ! -f .device/bundle/nm.tar.xz ]; then echo "no .device/bundle here: a fresh machine needs phase a (carry the bundle)"; exit 3; fi
mkdir -p $run/bin
[ -x $run/bin/node ] || { xz -dc .device/bundle/node.xz > $run/bin/node && chmod +x $run/bin/node; }
# Always unpacked: a warm machine may hold an older bundle.
tar -xJf .device/bundle/nm.tar.xz
export PATH=$PWD/$run/bin:$PATH
shared=$run/shared
mkdir -p $shared/models $shared/datasets/coco128/images/train2017 $shared/datasets/coco128/labels
cp -n .device/model/*.torchscript $shared/models/ 2>/dev/null
# The parity gate's onnxruntime-cpu reference (test/gpu/verify.test.ts), when carried.
if [ -f .device/ort/ort-linux-x64.tar.xz ]; then tar -xJf .device/ort/ort-linux-x64.tar.xz; cp -n .device/ort/*.onnx $shared/models/; fi
cp -rn .device/labels/train2017 $shared/datasets/coco128/labels/ 2>/dev/null
for d in .device/img-*; do [ -d "$d" ] && cp -n "$d"/*.jpg $shared/datasets/coco128/images/train2017/ 2>/dev/null; done
export DETQ_SHARED_DIR=$PWD/$shared DETQ_GPU_REFERENCE=$PWD/.device/ref
model=$shared/models/yolo11n-cuda-fp32.torchscript
echo "== $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader); node $(node --version); images $(ls $shared/datasets/coco128/images/train2017 | wc -l)"

vitest() { node node_modules/vitest/vitest.mjs run --config vitest.gpu.config.ts "$@"; }
detq() { node apps/cli/bin/detq.js "$@"; }
if [ "$phase" = a ]; then
  # Hopper only here: one architecture keeps the CUDA compile short.
  time node native/scripts/build.mjs --CDCMAKE_CUDA_ARCHITECTURES=90 > "$OUT/build.log" 2>&1 || { tail -60 "$OUT/build.log"; exit 1; }
  grep -E "detq native" "$OUT/build.log"
  detq info --json | tee "$OUT/info.json"
  if [ -n "${DETQ_BENCH_LAYOUT:-}" ]; then node native/scripts/bench-layout.mjs $model 32 2>&1 | tee "$OUT/bench-layout.log"; fi
  # DETQ_GPU_TESTS="test/gpu/x.test.ts ...": a subset of the suite right after the build (one call).
  if [ -n "${DETQ_GPU_TESTS:-}" ]; then
    DETQ_GPU_SKIP_BUILD=1 vitest $DETQ_GPU_TESTS 2>&1 | tee "$OUT/test-a.log" | grep -vE "^\s*$" | tail -40
    exit "${PIPESTATUS[0]}"
  fi
else
  [ ! -f .device/onnx/yolo11n-dyn.onnx ] || python3 native/scripts/compare-onnx-torch.py .device/onnx/yolo11n-dyn.onnx $model \
    $shared/datasets/coco128/images/train2017 2>&1 | tee "$OUT/compare.log"
  DETQ_GPU_KEEP_DIR=$OUT vitest 2>&1 | tee "$OUT/test-b.log" | grep -vE "^\s*$" | tail -40
  # End to end on JPEG files: coco128 listed 8 times (1024 decodes) so the run is long enough to time.
  list=$run/coco128x8.txt
  for i in 1 2 3 4 5 6 7 8; do ls $PWD/$shared/datasets/coco128/images/train2017/*.jpg; done > $list
  # JPEG decoding runs on libuv's pool (sharp): compare its default size with one thread per core.
  for uv in 4 16; do
    for h in "" --half; do
      echo "UV_THREADPOOL_SIZE=$uv"
      UV_THREADPOOL_SIZE=$uv detq bench --engine torch $h --model $model --batch 1,8,32 --iterations 100 --images $list 2>&1
    done
  done | tee "$OUT/bench.log"
fi
