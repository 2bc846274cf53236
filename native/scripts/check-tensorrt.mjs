#!/usr/bin/env node
// `TENSORRT_ROOT=<dir>[:<dir>...] npm run check:tensorrt`: compiles every TensorRT backend source, and
// the shared sources they include, with -fsyntax-only -Werror against each <dir>/include in turn (e.g.
// the public NVIDIA/TensorRT repository at tags v10.16 and v11.1). TensorRT itself cannot be installed
// on our machines, so this is how the backend stays honest against the real API of both versions.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const nativeDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const roots = (process.env.TENSORRT_ROOT ?? '').split(':').filter(Boolean);
const bad = roots.filter((r) => !existsSync(join(r, 'include', 'NvInferVersion.h')));
if (!roots.length || bad.length) {
  console.error(`check:tensorrt needs TENSORRT_ROOT: one or more TensorRT trees with include/NvInfer.h, joined by ':'${bad.length ? ` (not one: ${bad.join(', ')})` : ''}. ` +
    'The public NVIDIA/TensorRT repository has the headers at tags v10.16 and v11.1 (`include/`); keep them outside this repository.');
  process.exit(2);
}
const cudaRoot = process.env.CUDA_PATH ?? process.env.CUDA_HOME ?? '/usr/local/cuda';
const cxx = process.env.CXX ?? 'g++';
const flags = ['-std=c++17', '-fsyntax-only', '-Wall', '-Wextra', '-Werror', '-DNAPI_VERSION=8',
  '-DNODE_ADDON_API_CPP_EXCEPTIONS', '-DNODE_ADDON_API_CPP_EXCEPTIONS_ALL', '-DDETQ_WITH_TENSORRT'];
const trtDir = join(nativeDir, 'src', 'tensorrt');
// module.cc registers the TensorRT entry points; the core sources the backend relies on come along.
const sources = [...readdirSync(trtDir).filter((f) => f.endsWith('.cc')).map((f) => join(trtDir, f)),
  ...['module.cc', 'output_layout.cc', 'batch_sizes.cc'].map((f) => join(nativeDir, 'src', 'core', f))];
const version = (root) => {
  const h = readFileSync(join(root, 'include', 'NvInferVersion.h'), 'utf8');
  const part = (name) => h.match(new RegExp(`#define TRT_${name}_ENTERPRISE (\\d+)`))?.[1] ?? h.match(new RegExp(`#define NV_TENSORRT_${name} (\\d+)`))?.[1] ?? '?';
  return ['MAJOR', 'MINOR', 'PATCH', 'BUILD'].map(part).join('.');
};
let failed = 0;
for (const root of roots) {
  console.log(`TensorRT ${version(root)} headers at ${root}`);
  const includes = ['-isystem', join(root, 'include'), '-isystem', join(cudaRoot, 'include'),
    '-isystem', require('node-api-headers').include_dir, '-isystem', dirname(require.resolve('node-addon-api/package.json'))];
  for (const src of sources) {
    const r = spawnSync(cxx, [...flags, ...includes, src], { stdio: 'inherit' });
    const ok = r.status === 0;
    if (!ok) failed++;
    console.log(`  ${ok ? 'ok  ' : 'FAIL'} ${src.slice(nativeDir.length + 1)}`);
  }
}
console.log(`${roots.length * sources.length - failed} passed, ${failed} failed (${roots.length} TensorRT version${roots.length === 1 ? '' : 's'})`);
process.exit(failed ? 1 : 0);
