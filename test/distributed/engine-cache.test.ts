import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '@detq/core';
import { tempDir } from '../helpers/fixtures';
import { waitFor } from './helpers';

// TensorRT runs nowhere here: the build step is a stand-in command with the same interface as
// `detq build-engine` (test/distributed/fixtures/stand-in-build-engine.mjs); the lock, the cache key
// and the atomic placement are the real ones.
const SCRIPT = join(REPO_ROOT, 'test/distributed/fixtures/ensure-engine.ts');

function startWorker(onnx: string, cache: string, env: NodeJS.ProcessEnv) {
  const child = spawn(process.execPath, ['--import', 'tsx', SCRIPT, onnx, cache], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return { child, exited, result: () => JSON.parse(out) as { path: string; built: boolean }, stderr: () => err };
}

describe('engine cache: workers of one node build each engine once, under a file lock', () => {
  let dir: string;
  let onnx: string;
  let buildLog: string;
  let env: NodeJS.ProcessEnv;
  const builds = async () => (existsSync(buildLog) ? (await readFile(buildLog, 'utf8')).trim().split('\n').filter(Boolean) : []);

  beforeAll(async () => {
    dir = await tempDir('detq-engine-cache-');
    onnx = join(dir, 'yolo11n-dyn.onnx');
    await writeFile(onnx, randomBytes(4096));
    buildLog = join(dir, 'builds.log');
    env = { ...process.env, STAND_IN_BUILD_LOG: buildLog, STAND_IN_BUILD_MS: '1500' };
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('two workers starting at once: one build, both get the same engine; a later start finds it without building', async () => {
    const cache = join(dir, 'cache-a');
    const [a, b] = [startWorker(onnx, cache, env), startWorker(onnx, cache, env)];
    for (const w of [a, b]) expect((await w.exited).code, w.stderr()).toBe(0);
    expect(await builds()).toHaveLength(1);
    const [ra, rb] = [a.result(), b.result()];
    expect(ra.path).toBe(rb.path);
    expect([ra.built, rb.built].sort()).toEqual([false, true]);
    // Keyed by model sha256, GPU, compute capability, TensorRT version, precision and profile.
    expect(ra.path).toMatch(new RegExp(`^${cache}/yolo11n-dyn\\.[0-9a-f]{12}\\.nvidia-h100-80gb-hbm3\\.sm90\\.trt10\\.16\\.0\\.fp16\\.1x3x640x640_8x3x640x640\\.p2\\.engine$`));
    // The build was asked for exactly that: fp16, the profile, written into a folder of the cache.
    const { args } = JSON.parse((await builds())[0]!) as { args: string[] };
    expect(args.slice(0, 2)).toEqual([onnx, '--out']);
    expect(args.slice(3)).toEqual(['--fp16', '--min', '1x3x640x640', '--opt', '8x3x640x640', '--max', '8x3x640x640', '--contexts', '2']);
    expect(await readFile(ra.path, 'utf8')).toBe(`plan ${args.join(' ')}`);
    // Nothing left behind: no lock, no build folder.
    expect((await readdir(cache)).sort()).toEqual([ra.path.slice(cache.length + 1)]);

    const c = startWorker(onnx, cache, env);
    expect((await c.exited).code, c.stderr()).toBe(0);
    expect(c.result()).toEqual({ path: ra.path, built: false });
    expect(await builds()).toHaveLength(1);
  }, 120_000);

  it('a worker killed mid-build: the next one takes the stale lock over and builds', async () => {
    const cache = join(dir, 'cache-b');
    await rm(buildLog, { force: true });
    const dying = startWorker(onnx, cache, { ...env, STAND_IN_BUILD_MS: '600000' });
    await waitFor('the first build to start', async () => ((await builds()).length === 1 ? true : undefined), 60_000);
    // The worker and its build step die together (SIGKILL of the process group): the lock stays behind.
    process.kill(-dying.child.pid!, 'SIGKILL');
    await dying.exited;
    expect((await readdir(cache)).some((n) => n.endsWith('.lock'))).toBe(true);

    const next = startWorker(onnx, cache, env);
    expect((await next.exited).code, next.stderr()).toBe(0);
    expect(next.result().built).toBe(true);
    expect(await builds()).toHaveLength(2);
    // The dead build's folder was cleared by the worker that took the lock over.
    expect((await readdir(cache)).sort()).toEqual([next.result().path.slice(cache.length + 1)]);
  }, 120_000);
});
