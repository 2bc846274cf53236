import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import lockfile from 'proper-lockfile';
import { FatalError, REPO_ROOT, sha256File } from '@detq/core';
import { engineFileName, loadNativeAddon, nativeUnavailableReason } from '@detq/inference';
import { cacheDir, resolveModel } from '@detq/pipeline';
import type { ObjectStore } from '@detq/storage';

/** What a TensorRT plan is bound to besides the model: the GPU model and the TensorRT version. */
export interface EngineTarget {
  gpu: string;
  /** Compute capability, e.g. '9.0'. */
  cc: string;
  tensorrt: string;
}

/** An optimisation profile over batch and resolution, as `detq build-engine --min/--opt/--max` take it. */
export interface EngineProfile {
  min: string;
  opt: string;
  max: string;
  /** Execution contexts the engine serves, one optimisation profile each (build-engine's default: 2). */
  contexts?: number;
}

export interface EngineCacheRequest {
  /** The ONNX export, a local file. */
  onnxPath: string;
  /** The engine cache: a node-local volume shared by the node's workers. */
  dir: string;
  target: EngineTarget;
  precision: 'fp32' | 'fp16';
  profile: EngineProfile;
  /**
   * The build step as a command, `detq build-engine` in production; the ONNX path and its flags are
   * appended. It must print the engine's path as the last line of its stdout.
   */
  buildCommand: readonly [string, ...string[]];
  /** Extra flags for the build step (`--verify`: the parity gate). */
  buildArgs?: string[];
  /** The build's environment (CUDA_VISIBLE_DEVICES picks its GPU). */
  buildEnv?: NodeJS.ProcessEnv;
  /** Longest a build may take, and so how long a worker waits for another's build. */
  buildTimeoutMs?: number;
  /** A lock not refreshed for this long belongs to a dead worker and is taken over (default 30 s). */
  lockStaleMs?: number;
  log?: (line: string) => void;
}

/**
 * Finds the engine for this model, GPU, TensorRT version, precision and profile in the cache, or
 * builds it. Builds run under a file lock (proper-lockfile: a lock directory whose mtime the holder
 * keeps fresh, taken over once stale when its holder died), so the workers of one node build each
 * engine once; the others wait and use it. A build writes into a temporary folder of the cache and is
 * renamed into place, so no worker ever loads a half-written plan.
 */
export async function ensureEngine(r: EngineCacheRequest): Promise<{ path: string; built: boolean }> {
  const log = r.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const sha256 = await sha256File(r.onnxPath);
  const profiles = r.profile.contexts ?? 2;
  const path = join(r.dir, engineFileName({ model: r.onnxPath, sha256, ...r.target, precision: r.precision, min: r.profile.min, max: r.profile.max, profiles }));
  if (existsSync(path)) return { path, built: false };
  await mkdir(r.dir, { recursive: true });
  const timeoutMs = r.buildTimeoutMs ?? 30 * 60_000;
  log(`detq worker: no engine ${basename(path)} in ${r.dir}; waiting for the build lock`);
  const release = await lockfile.lock(path, {
    realpath: false,
    stale: r.lockStaleMs ?? 30_000,
    retries: { retries: Math.ceil(timeoutMs / 1000), factor: 1, minTimeout: 1000, maxTimeout: 1000 },
    // The build goes on: the final rename is atomic, so a second build only costs time.
    onCompromised: (err) => log(`detq worker: engine build lock lost (${err.message})`),
  });
  try {
    // Another worker may have built it while this one waited for the lock.
    if (existsSync(path)) return { path, built: false };
    // A worker that died mid-build left its folder behind; the lock holder clears them.
    const prefix = `.build-${basename(path)}-`;
    for (const leftover of (await readdir(r.dir)).filter((n) => n.startsWith(prefix))) await rm(join(r.dir, leftover), { recursive: true, force: true });
    const tmp = await mkdtemp(join(r.dir, prefix));
    try {
      const started = Date.now();
      log(`detq worker: building ${basename(path)} (${r.precision}, ${r.profile.min} .. ${r.profile.max})`);
      const out = await runBuild(
        [...r.buildCommand, r.onnxPath, '--out', tmp, ...(r.precision === 'fp16' ? ['--fp16'] : []), '--min', r.profile.min, '--opt', r.profile.opt, '--max', r.profile.max, '--contexts', String(profiles), ...(r.buildArgs ?? [])],
        r.buildEnv ?? process.env,
        timeoutMs,
      );
      const written = out.trim().split('\n').at(-1) ?? '';
      if (!written || !existsSync(written)) throw new FatalError('ENGINE_UNAVAILABLE', `engine build printed no engine file (stdout: ${JSON.stringify(out.slice(-200))})`);
      await rename(written, path);
      log(`detq worker: built ${basename(path)} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      return { path, built: true };
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  } finally {
    await release().catch(() => undefined);
  }
}

function runBuild(argv: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<string> {
  const [cmd, ...args] = argv as [string, ...string[]];
  return new Promise((resolve, reject) => {
    // stderr goes to the worker's log as it comes: a build takes minutes and says what it does.
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'inherit'], timeout: timeoutMs, killSignal: 'SIGKILL' });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', reject);
    child.once('close', (code, signal) =>
      code === 0
        ? resolve(out)
        : reject(new FatalError('ENGINE_UNAVAILABLE', `engine build failed (${signal ? `signal ${signal}` : `exit ${code}`}): ${argv.slice(1, 4).join(' ')} …`)),
    );
  });
}

/** The GPU and TensorRT this process would build for, from the native addon. */
export function tensorRtTarget(device: number): EngineTarget {
  const reason = nativeUnavailableReason('tensorrt');
  if (reason) throw new FatalError('ENGINE_UNAVAILABLE', `engine tensorrt is not available: ${reason}`);
  const addon = loadNativeAddon();
  const gpu = addon.cudaInfo().devices.find((d) => d.index === device);
  if (!gpu) throw new FatalError('ENGINE_UNAVAILABLE', `no CUDA device ${device} on this machine`);
  return { gpu: gpu.name, cc: gpu.computeCapability, tensorrt: addon.buildInfo.tensorrt! };
}

/** CUDA_VISIBLE_DEVICES that shows a child process only `device` (as its device 0). */
export function onlyDevice(device: number, env: NodeJS.ProcessEnv = process.env): string {
  const visible = env.CUDA_VISIBLE_DEVICES?.split(',').map((d) => d.trim()).filter(Boolean);
  return visible?.length ? (visible[device] ?? String(device)) : String(device);
}

export interface WorkerEngineOptions {
  device: number;
  half: boolean;
  maxBatch: number;
  store?: ObjectStore;
  env?: NodeJS.ProcessEnv;
  log?: (line: string) => void;
}

/**
 * The plan a TensorRT worker runs: DETQ_MODEL as given when it already is a `.engine` file, else the
 * engine cache's entry for that ONNX export on this GPU (DETQ_ENGINE_CACHE, default <cache>/engines),
 * built with `detq build-engine` when missing. The profile covers batches 1..maxBatch at 640x640
 * unless DETQ_ENGINE_PROFILE (`min,opt,max`) says otherwise; the parity gate (`--verify`) runs
 * unless DETQ_ENGINE_VERIFY=0.
 */
export async function workerEngine(o: WorkerEngineOptions): Promise<string> {
  const env = o.env ?? process.env;
  const model = await resolveModel({ env, ...(o.store && { store: o.store }) });
  if (model.path.endsWith('.engine')) return model.path;
  const [min, opt, max] = (env.DETQ_ENGINE_PROFILE ?? `1x3x640x640,${o.maxBatch}x3x640x640,${o.maxBatch}x3x640x640`).split(',');
  if (!min || !opt || !max) throw new FatalError('USAGE', `DETQ_ENGINE_PROFILE: expected min,opt,max such as 1x3x640x640,8x3x640x640,8x3x640x640`);
  const { path } = await ensureEngine({
    onnxPath: model.path,
    dir: env.DETQ_ENGINE_CACHE ?? join(cacheDir(env), 'engines'),
    target: tensorRtTarget(o.device),
    precision: o.half ? 'fp16' : 'fp32',
    profile: { min, opt, max },
    buildCommand: [process.execPath, join(REPO_ROOT, 'apps/cli/bin/detq.js'), 'build-engine'],
    buildArgs: env.DETQ_ENGINE_VERIFY === '0' ? [] : ['--verify'],
    buildEnv: { ...env, CUDA_VISIBLE_DEVICES: onlyDevice(o.device, env) },
    ...(o.log && { log: o.log }),
  });
  return path;
}
