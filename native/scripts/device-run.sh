#!/usr/bin/env bash
# Runs on the GPU machine through the `run` tool, from the repository root, after device-pack.sh here.
# A machine goes back after a short idle time, so every call unpacks and builds (incremental when warm):
#   device-run.sh a   build, then kernels + nvJPEG decode + engine tests, compute-sanitizer, parity
#   device-run.sh b   build, then the benchmark: engine-only on coco128, end to end on COCO-size and 12 MP files,
#                     and the JS feed alone (bench/js-feed.ts)
#   device-run.sh prof  build, then one end-to-end run on COCO-size files with a CPU profile of every JS
#                       thread and the native per-batch timings (DETQ_DEBUG) in $OUT, then the benchmark
#   device-run.sh rss build, then `detq label` alone in its process under /usr/bin/time -v, on the COCO-size
#                     list, on 12 MP photos made from the carried images and on 16 100 MP photos made from
#                     the first of them: each run's own peak RSS
#   device-run.sh label  build, then `detq label` on the COCO-size list, its rate only (quick comparisons)
#   device-run.sh timeline [settings...]  build, then `detq label` on the COCO-size list with DETQ_DEBUG once per
#                     setting (a quoted list of VAR=value, "" for the defaults, e.g. "DETQ_GPU_BATCHES_PER_CONTEXT=3"): its rate and the batch timeline
#                     summary (timeline-summary.mjs); the debug logs go to $OUT/timelines.tar.gz
#   device-run.sh p   build, then labels of the carried coco128 images into $OUT (parity computed on the dev machine)
#   device-run.sh t <vitest args...>   build, then those GPU tests only
# DETQ_LIST_READS (default 61,440): how many reads the COCO-size list holds (longer runs weigh start-up less).
# DETQ_LABEL_BATCH (default 32): --batch of the label and timeline phases.
# Logs go to $OUT. Exits non-zero when the build or a test fails.
set -uo pipefail
phase=${1:-a}
shift || true
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/detq-out}
mkdir -p "$OUT"
run=.device/run
# One carry holds at most 64 MiB: a later call on the still-warm machine may carry the rest of coco128
# without Node and the model, which an earlier call left in $cache.
cache=/tmp/detq-device-cache
if [ -f .device/bundle/nm.tar.xz ]; then mkdir -p $cache && cp -rn .device/bundle .device/model $cache/
elif [ -f $cache/bundle/nm.tar.xz ]; then cp -r $cache/bundle $cache/model .device/
else echo "no .device/bundle here or in $cache: carry the .device folder made by device-pack.sh"; exit 3; fi
mkdir -p $run/bin
[ -x $run/bin/node ] || { xz -dc .device/bundle/node.xz > $run/bin/node && chmod +x $run/bin/node; }
[ -d node_modules/vitest ] || tar -xJf .device/bundle/nm.tar.xz
export PATH=$PWD/$run/bin:$PATH
shared=$run/shared
mkdir -p $shared/models $shared/datasets/coco128/images/train2017 $shared/datasets/coco128/labels $shared/datasets/samples/images
cp -n .device/model/*.torchscript $shared/models/ 2>/dev/null
# The parity gate's onnxruntime-cpu reference (test/gpu/verify.test.ts), when carried.
if [ -f .device/ort/ort-linux-x64.tar.xz ]; then tar -xJf .device/ort/ort-linux-x64.tar.xz; cp -n .device/ort/*.onnx $shared/models/; fi
cp -rn .device/labels/train2017 $shared/datasets/coco128/labels/ 2>/dev/null
cp -n .device/samples/* $shared/datasets/samples/images/ 2>/dev/null
for d in .device/img-*; do [ -d "$d" ] && cp -n "$d"/*.jpg $shared/datasets/coco128/images/train2017/ 2>/dev/null; done
export DETQ_SHARED_DIR=$PWD/$shared DETQ_GPU_REFERENCE=$PWD/.device/ref DETQ_GPU_SKIP_BUILD=1
model=$shared/models/yolo11n-cuda-fp32.torchscript
echo "== $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader); node $(node --version); $(nproc) cores; images $(ls $shared/datasets/coco128/images/train2017 | wc -l)"

vitest() { node node_modules/vitest/vitest.mjs run --config vitest.gpu.config.ts "$@"; }
# The carried coco128 images listed to >= 61,440 reads so a run lasts ~13 s at GPU speed: with 5,120 the
# first batches' start-up (window fill, first kernels of each batch size) held the rate to ~2,000 img/s
# where 15,360 reads ran at ~2,930; the acceptance figures of native/README.md are on 61,440.
coco_list() {
  local list=$run/coco-list.txt n
  n=$(ls $shared/datasets/coco128/images/train2017/*.jpg | wc -l)
  for i in $(seq $(( (${DETQ_LIST_READS:-61440} + n - 1) / n ))); do ls $PWD/$shared/datasets/coco128/images/train2017/*.jpg; done > $list
  echo $list
}
bench() {
  local n
  n=$(ls $shared/datasets/coco128/images/train2017/*.jpg | wc -l)
  # Execution contexts per engine: each of DETQ_BENCH_CONTEXTS (e.g. "1 2"), else the engine's default.
  for c in ${DETQ_BENCH_CONTEXTS:-default}; do
    echo "DETQ_GPU_CONTEXTS=${c/default/${DETQ_GPU_CONTEXTS:-default}}"
    env $([ "$c" = default ] || echo DETQ_GPU_CONTEXTS=$c) UV_THREADPOOL_SIZE=16 node apps/cli/bin/detq.js bench --engine torch --half --model $model --batch 1,8,32 --iterations 100 --images "$(coco_list)" --photos-12mp $n 2>&1 || return 1
  done | tee "$OUT/bench.log"
  local status=${PIPESTATUS[0]}
  # The JS side alone in front of a stand-in engine: what it could feed the contexts on this host.
  BENCH_READS=20480 UV_THREADPOOL_SIZE=16 node --import tsx bench/js-feed.ts 2>&1 | tee -a "$OUT/bench.log"
  return "$status"
}
detq() { node apps/cli/bin/detq.js "$@"; }
# Hopper only here: one architecture keeps the CUDA compile short.
start=$(date +%s)
node native/scripts/build.mjs --CDCMAKE_CUDA_ARCHITECTURES=90 > "$OUT/build.log" 2>&1 || { tail -60 "$OUT/build.log"; exit 1; }
echo "build $(( $(date +%s) - start )) s: $(grep -E 'detq native: CUDA' "$OUT/build.log" | tail -1)"
detq info --json > "$OUT/info.json"
status=0
case "$phase" in
  a)
    vitest test/gpu/kernels.test.ts test/gpu/decode.test.ts test/gpu/engine.test.ts test/gpu/memcheck.test.ts test/gpu/parity.test.ts 2>&1 | tee "$OUT/test-a.log" | grep -vE "^\s*$" | tail -60
    status=${PIPESTATUS[0]}
    ;;
  t)
    vitest "$@" 2>&1 | tee "$OUT/test-t.log" | grep -vE "^\s*$" | tail -60
    status=${PIPESTATUS[0]}
    ;;
  b)
    bench || status=1
    ;;
  prof)
    DETQ_DEBUG=1 UV_THREADPOOL_SIZE=16 node --cpu-prof --cpu-prof-dir="$OUT/prof" apps/cli/bin/detq.js label "$(coco_list)" --out $run/prof-out \
      --engine torch --half --model $model --batch 32 2> "$OUT/debug.log" || { tail -20 "$OUT/debug.log"; status=1; }
    grep -v '^detq: native debug: infer' "$OUT/debug.log" | tail -5
    jq -c .timing $run/prof-out/summary.json 2>/dev/null || grep -A6 '"timing"' $run/prof-out/summary.json
    rm -rf $run/prof-out
    bench || status=1
    ;;
  label)
    UV_THREADPOOL_SIZE=16 detq label "$(coco_list)" --out $run/label-out --engine torch --half --model $model --batch ${DETQ_LABEL_BATCH:-32} > "$OUT/label.log" 2>&1
    status=$?
    grep -E 'img/s' "$OUT/label.log" | tail -1
    rm -rf $run/label-out
    ;;
  rss)
    photos=$run/photos-12mp huge=$run/photos-100mp
    mkdir -p $photos $huge
    # 100 MP (11547x8660, just under --max-pixels' default): the byte window, not the count, bounds what is in flight.
    node -e "
      const sharp = require('sharp'); const fs = require('fs'); const [src, dst, big] = process.argv.slice(1);
      const make = (f, dir, w, h) => sharp(src + '/' + f).rotate().resize(w, h, { fit: 'fill' }).jpeg({ quality: 90 }).toFile(dir + '/' + f);
      (async () => {
        const files = fs.readdirSync(src);
        for (const f of files) await make(f, dst, 4032, 3024);
        await Promise.all(files.slice(0, 16).map((f) => make(f, big, 11547, 8660)));
      })();
    " $shared/datasets/coco128/images/train2017 $photos $huge || status=1
    for i in $(seq 90); do ls $PWD/$photos/*.jpg; done > $run/photos-list.txt
    for i in $(seq 16); do ls $PWD/$huge/*.jpg; done > $run/huge-list.txt
    for set in "coco $(coco_list)" "12mp $run/photos-list.txt" "100mp $run/huge-list.txt"; do
      set -- $set
      UV_THREADPOOL_SIZE=16 /usr/bin/time -v node apps/cli/bin/detq.js label "$2" --out $run/rss-out --engine torch --half --model $model --batch 32 \
        > /dev/null 2> "$OUT/rss-$1.log" || status=1
      echo "$1: $(grep -E 'img/s' "$OUT/rss-$1.log" | tail -1) | $(grep -E 'Maximum resident|User time|System time|Elapsed' "$OUT/rss-$1.log" | tr -s ' \t' ' ' | tr '\n' ';')"
      rm -rf $run/rss-out
    done
    ;;
  timeline)
    mkdir -p $run/timelines
    n=0
    for setting in "${@:-}"; do
      n=$((n + 1))
      log=$run/timelines/$n.log
      echo "== [$n] ${setting:-defaults}"
      env $setting DETQ_DEBUG=1 UV_THREADPOOL_SIZE=16 node apps/cli/bin/detq.js label "$(coco_list)" --out $run/timeline-out --engine torch --half \
        --model $model --batch ${DETQ_LABEL_BATCH:-32} > $run/timelines/$n.out 2> $log || { tail -20 $log; status=1; }
      grep -hE 'img/s' $run/timelines/$n.out $log | tail -1
      node native/scripts/timeline-summary.mjs $log
      rm -rf $run/timeline-out
    done
    tar -czf "$OUT/timelines.tar.gz" -C $run timelines
    ;;
  p)
    # Labels of the carried coco128 images (the whole set does not fit one carry with Node): torch fp32 and
    # fp16 with GPU decoding, fp32 with CPU decoding, at conf 0.25 and as val; compared and evaluated on the dev machine.
    imgs=$shared/datasets/coco128/images/train2017
    for v in "fp32 auto" "fp16 auto" "fp32 cpu"; do
      set -- $v
      h=$([ "$1" = fp16 ] && echo --half)
      detq label $imgs --out "$OUT/$1-$2-conf025" --engine torch $h --decode $2 --model $model --batch 32 || status=1
      detq label $imgs --out "$OUT/$1-$2-val" --engine torch $h --decode $2 --model $model --batch 32 --conf 0.001 --multi-label || status=1
    done
    ;;
esac
exit "$status"
