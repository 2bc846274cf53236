#!/usr/bin/env node
// `npm run build:native`: configures and builds the addon with cmake-js against the node-api-headers
// package (no download). Extra CMake definitions pass through, e.g. --CDTorch_DIR=/path.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const nativeDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const cmakeJs = join(dirname(require.resolve('cmake-js/package.json')), 'bin', 'cmake-js');
const args = [cmakeJs, 'build', '--directory', nativeDir, '--out', join(nativeDir, 'build'), '--config', 'Release',
  '--parallel', String(availableParallelism()), ...process.argv.slice(2)];
const result = spawnSync(process.execPath, args, { stdio: 'inherit' });
process.exit(result.status ?? 1);
