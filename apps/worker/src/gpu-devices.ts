import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { FatalError } from '@detq/core';
import { loadNativeAddon } from '@detq/inference';

/** The GPUs of this machine as CUDA indices, and why each way of finding them found none. */
export interface GpuListing {
  indices: number[];
  reasons: string[];
}

/**
 * The machine's GPUs: the native addon's CUDA device list, else nvidia-smi's (an image whose addon is
 * not built, or a CPU-only engine, still knows how many workers to run).
 */
export async function listGpus(): Promise<GpuListing> {
  const reasons: string[] = [];
  try {
    const cuda = loadNativeAddon().cudaInfo();
    if (cuda.devices.length) return { indices: cuda.devices.map((d) => d.index), reasons };
    reasons.push(`CUDA: ${cuda.error ?? 'no device'}`);
  } catch (err) {
    reasons.push((err as Error).message);
  }
  try {
    const { stdout } = await promisify(execFile)('nvidia-smi', ['--query-gpu=index', '--format=csv,noheader'], { timeout: 30_000 });
    const indices = stdout.split('\n').map((l) => l.trim()).filter(Boolean).map(Number);
    if (indices.length && indices.every(Number.isInteger)) return { indices, reasons };
    reasons.push('nvidia-smi: no GPU listed');
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    reasons.push(`nvidia-smi: ${e.code === 'ENOENT' ? 'not installed' : (e.stderr?.trim() || e.message).split('\n')[0]}`);
  }
  return { indices: [], reasons };
}

/**
 * `--gpus` / DETQ_GPUS: `all` (every GPU found) or a comma-separated list of CUDA indices such as
 * `0,1`. A list is taken as given (a device that does not exist fails its own worker with the CUDA
 * error), so CPU workers can stand in for GPUs in tests.
 */
export async function resolveGpus(spec: string, list: () => Promise<GpuListing> = listGpus): Promise<number[]> {
  const value = spec.trim();
  if (value === 'all') {
    const found = await list();
    if (!found.indices.length) throw new FatalError('ENGINE_UNAVAILABLE', `--gpus all: no GPU found (${found.reasons.join('; ')})`);
    return found.indices;
  }
  const parts = value.split(',').map((p) => p.trim());
  if (!parts.every((p) => /^\d+$/.test(p)))
    throw new FatalError('USAGE', `--gpus / DETQ_GPUS: expected "all" or GPU indices such as 0,1 (got ${JSON.stringify(spec)})`);
  const indices = parts.map(Number);
  if (new Set(indices).size !== indices.length) throw new FatalError('USAGE', `--gpus / DETQ_GPUS: GPU listed twice in ${JSON.stringify(spec)}`);
  return indices;
}
