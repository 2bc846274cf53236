import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from '@detq/core';

/** Builds the addon (CUDA kernels + every backend CMake finds) before any GPU test loads it. */
export default function setup(): void {
  if (process.env.DETQ_GPU_SKIP_BUILD) return;
  const r = spawnSync(process.execPath, [join(REPO_ROOT, 'native', 'scripts', 'build.mjs')], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error('npm run build:native failed');
}
