#!/usr/bin/env node
// detq runs from its TypeScript sources through tsx: no build step between a clone and a run.
import { availableParallelism } from 'node:os';

// Image reads and sharp decodes run on libuv's pool; its default of 4 threads caps decoding on bigger
// machines (a GPU worker on 16 cores decoded half as fast). Set before the pool's first use.
process.env.UV_THREADPOOL_SIZE ??= String(Math.max(4, availableParallelism()));

const { register } = await import('tsx/esm/api');
register();
const { main } = await import('../src/main.ts');
process.exitCode = await main(process.argv);
