import { createHash, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, join } from 'node:path';
import { faultSettingsFromEnv, FatalError, sha256File, sharedPath } from '@detq/core';
import { readModelMetadata, readNamesFile, type ModelMetadata } from '@detq/inference';
import { httpStatusError, isS3Uri, isTransientStorageError, retryTransient, RoutingStore, type ObjectStore } from '@detq/storage';

export interface ResolvedModel {
  path: string;
  name: string;
  sha256: string;
  /** Class names and input size from the model file (or --names). */
  metadata: ModelMetadata;
  /** Where it came from: flag, env, shared or download. */
  source: 'flag' | 'env' | 'shared' | 'download';
}

/**
 * The model detq uses when none is given and ../shared is absent: the YOLO11n ONNX export the tests and
 * the accuracy figures use, pinned by its sha256. DETQ_MODEL_URL / DETQ_MODEL_SHA256 point elsewhere.
 */
export const DEFAULT_MODEL = {
  url: 'https://github.com/detq/detq/releases/download/models-v1/yolo11n-dyn.onnx',
  sha256: '948cf4954ae9b90871fa56ee1c1aaef4e7d8a92652ceff4595b47b288d848929',
};

export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.DETQ_CACHE_DIR ?? join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'detq');
}

export interface ResolveModelOptions {
  /** --model: a path, s3:// URI or http(s):// URL. */
  model?: string;
  /** --names: a .yaml or .txt of class names, overriding the model's own. */
  names?: string;
  /** Expected sha256 of `model`, when known (job specs carry one). */
  sha256?: string;
  env?: NodeJS.ProcessEnv;
  store?: ObjectStore;
}

/** Finds the model: --model, else DETQ_MODEL, else ../shared/models/yolo11n-dyn.onnx, else the pinned download. */
export async function resolveModel(options: ResolveModelOptions = {}): Promise<ResolvedModel> {
  const env = options.env ?? process.env;
  const given = options.model ?? env.DETQ_MODEL;
  const source = options.model ? 'flag' : env.DETQ_MODEL ? 'env' : undefined;
  let path: string;
  if (given && source) {
    const what = source === 'flag' ? '--model' : 'DETQ_MODEL';
    path = /^(https?|s3):\/\//.test(given)
      ? await fetchToCache(given, options.sha256, env, options.store)
      : given;
    if (!existsSync(path)) throw new FatalError('BAD_MODEL', `model file not found: ${path} (${what})`);
  } else {
    const shared = sharedPath('models', 'yolo11n-dyn.onnx');
    path = shared ?? (await fetchToCache(env.DETQ_MODEL_URL ?? DEFAULT_MODEL.url, env.DETQ_MODEL_SHA256 ?? DEFAULT_MODEL.sha256, env));
  }
  const sha256 = await sha256File(path);
  if (options.sha256 && options.sha256 !== sha256)
    throw new FatalError('BAD_MODEL', `model ${path} has sha256 ${sha256}, expected ${options.sha256}`);
  const metadata = await readModelMetadata(path);
  if (options.names) metadata.names = await readNamesFile(options.names);
  return { path, name: basename(path), sha256, metadata, source: source ?? (path.startsWith(cacheDir(env)) ? 'download' : 'shared') };
}

/**
 * Downloads a model into the cache once. With a sha256 the file is verified before it is used and
 * cached under that hash, so a tampered or partial download is never picked up; a cache hit is
 * verified again (against the pinned sha256, or the one recorded at download) and re-fetched when it
 * no longer matches. Transient failures (refused, reset, 5xx, timeouts) are retried for the outage
 * budget and then thrown as they are, so a chunk retries later; only permanent ones are BAD_MODEL.
 */
export async function fetchToCache(
  uri: string,
  sha256: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  store: ObjectStore = new RoutingStore(),
): Promise<string> {
  const key = sha256 ?? createHash('sha256').update(uri).digest('hex');
  const dir = join(cacheDir(env), 'models', key);
  const target = join(dir, basename(new URL(uri).pathname) || 'model.onnx');
  const recorded = `${target}.sha256`;
  if (existsSync(target)) {
    const expected = sha256 ?? (await readFile(recorded, 'utf8').catch(() => undefined))?.trim();
    if (expected && (await sha256File(target)) === expected) return target;
    await rm(target, { force: true });
  }
  await mkdir(dir, { recursive: true });
  let body: Buffer;
  try {
    body = isS3Uri(uri)
      ? await store.get(uri) // the store waits out outages itself
      : await retryTransient(() => download(uri), { budgetMs: faultSettingsFromEnv(env).s3.outageBudgetMs });
  } catch (err) {
    if (isTransientStorageError(err)) throw err;
    throw new FatalError('BAD_MODEL', `cannot download model ${uri}: ${(err as Error).message}`, { cause: err });
  }
  const got = createHash('sha256').update(body).digest('hex');
  if (sha256 && got !== sha256)
    throw new FatalError('BAD_MODEL', `downloaded model ${uri} has sha256 ${got}, expected ${sha256}: refusing to use it`);
  // Concurrent fetches (two workers on one host, two chunks of one worker) each write their own temp file.
  const tmp = `${target}.${process.pid}.${randomUUID()}.tmp`;
  await writeFile(tmp, body);
  const recordedTmp = `${recorded}.${process.pid}.${randomUUID()}.tmp`;
  await writeFile(recordedTmp, got);
  await rename(recordedTmp, recorded);
  await rename(tmp, target).catch(async (err: unknown) => {
    await rm(tmp, { force: true });
    throw err;
  });
  return target;
}

async function download(uri: string): Promise<Buffer> {
  const res = await fetch(uri);
  if (!res.ok) throw httpStatusError(res.status, `HTTP ${res.status} ${res.statusText}`);
  return Buffer.from(await res.arrayBuffer());
}
