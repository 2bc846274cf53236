#!/usr/bin/env bash
# CPU reference for the GPU parity tests, made on the dev machine (ONNX Runtime does not travel to the
# GPU machine): onnxruntime-cpu labels of coco128 at the default conf, and `detq eval` of a val-style run.
# Output: .device/ref (ignored), carried to the GPU machine by native/scripts/device-pack.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
coco=${DETQ_SHARED_DIR:-../shared}/datasets/coco128
ref=.device/ref
rm -rf "$ref" && mkdir -p "$ref"
detq() { node apps/cli/bin/detq.js "$@"; }
detq label "$coco/images/train2017" --out "$ref/cpu-conf025" --engine onnxruntime-cpu --batch 8
detq label "$coco/images/train2017" --out /tmp/detq-cpu-val --engine onnxruntime-cpu --conf 0.001 --multi-label --batch 8
detq eval --pred /tmp/detq-cpu-val --labels "$coco/labels/train2017" --json > "$ref/cpu-eval.json"
rm -rf /tmp/detq-cpu-val
