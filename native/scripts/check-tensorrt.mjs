#!/usr/bin/env node
// `TENSORRT_ROOT=<dir> npm run check:tensorrt`: compiles every TensorRT backend source, and the shared
// headers they include, with -fsyntax-only against $TENSORRT_ROOT/include. TensorRT itself cannot be
// installed on our machines, so this is how the backend stays honest against the real API.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const nativeDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const root = process.env.TENSORRT_ROOT;
if (!root || !existsSync(join(root, 'include', 'NvInfer.h'))) {
  console.error('check:tensorrt needs TENSORRT_ROOT pointing at a TensorRT 10 tree with include/NvInfer.h ' +
    '(the public NVIDIA/TensorRT repository at tag v10.16 has the headers; keep them outside this repository).');
  process.exit(2);
}
const cudaRoot = process.env.CUDA_PATH ?? process.env.CUDA_HOME ?? '/usr/local/cuda';
const cxx = process.env.CXX ?? 'g++';
const includes = [
  '-isystem', join(root, 'include'),
  '-isystem', join(cudaRoot, 'include'),
  '-isystem', require('node-api-headers').include_dir,
  '-isystem', dirname(require.resolve('node-addon-api/package.json')),
];
const flags = ['-std=c++17', '-fsyntax-only', '-Wall', '-Wextra', '-Werror', '-DNAPI_VERSION=8',
  '-DNODE_ADDON_API_CPP_EXCEPTIONS', '-DNODE_ADDON_API_CPP_EXCEPTIONS_ALL', '-DDETQ_WITH_TENSORRT'];
const trtDir = join(nativeDir, 'src', 'tensorrt');
// module.cc is included because it is where the TensorRT entry points are registered.
const sources = [...readdirSync(trtDir).filter((f) => f.endsWith('.cc')).map((f) => join(trtDir, f)),
  join(nativeDir, 'src', 'core', 'module.cc')];
let failed = 0;
for (const src of sources) {
  const r = spawnSync(cxx, [...flags, ...includes, src], { stdio: 'inherit' });
  const ok = r.status === 0;
  if (!ok) failed++;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${src.slice(nativeDir.length + 1)}`);
}
console.log(`${sources.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
