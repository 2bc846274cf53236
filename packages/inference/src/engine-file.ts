import { createHash, randomBytes } from 'node:crypto';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { FatalError, engineHeaderSchema, type EngineHeader } from '@detq/core';

/**
 * A detq TensorRT engine file: 8 magic bytes, the header's length (uint32 LE), the header (JSON,
 * engineHeaderSchema), then TensorRT's plan. The header carries the plan's sha256, checked before
 * TensorRT sees the bytes: a truncated or damaged file is refused with a message, not deserialised.
 */
export const ENGINE_MAGIC = Buffer.from('DETQTRT\x02', 'latin1');
const PREFIX = ENGINE_MAGIC.length + 4;
const MAX_HEADER = 1 << 20;

export type EngineHeaderFields = Omit<EngineHeader, 'format' | 'planBytes' | 'planSha256'>;

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The whole file's bytes for a header and a plan (checksum and size filled in). */
export function encodeEngineFile(fields: EngineHeaderFields, plan: Uint8Array): Buffer {
  const header: EngineHeader = { format: 1, ...fields, planBytes: plan.length, planSha256: sha256(plan) };
  const json = Buffer.from(JSON.stringify(engineHeaderSchema.parse(header)), 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32LE(json.length);
  return Buffer.concat([ENGINE_MAGIC, length, json, plan]);
}

/**
 * Writes an engine file through a temporary name in the same folder, renamed into place: a reader
 * (another worker's engine cache) never sees half a file, and a failed write leaves nothing behind.
 */
export async function writeEngineFile(path: string, fields: EngineHeaderFields, plan: Uint8Array): Promise<EngineHeader> {
  const bytes = encodeEngineFile(fields, plan);
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    const fh = await open(tmp, 'wx');
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw new FatalError('OUTPUT_FAILED', `cannot write engine file ${path}: ${(err as Error).message}`, { cause: err });
  }
  return decodeHeader(bytes, path);
}

function notAnEngine(path: string, why: string): FatalError {
  return new FatalError('BAD_MODEL', `${path} is not a usable detq TensorRT engine file (${why}): rebuild it with \`detq build-engine <model.onnx>\``);
}

function decodeHeader(bytes: Buffer, path: string): EngineHeader {
  if (bytes.length < PREFIX || !bytes.subarray(0, ENGINE_MAGIC.length).equals(ENGINE_MAGIC)) throw notAnEngine(path, 'no detq engine header');
  const length = bytes.readUInt32LE(ENGINE_MAGIC.length);
  if (length > MAX_HEADER || bytes.length < PREFIX + length) throw notAnEngine(path, 'truncated header');
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8', PREFIX, PREFIX + length));
  } catch {
    throw notAnEngine(path, 'damaged header');
  }
  const parsed = engineHeaderSchema.safeParse(json);
  if (!parsed.success) throw notAnEngine(path, `header: ${parsed.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ')}`);
  return parsed.data;
}

/** The header alone (for `detq info`), without reading or checking the plan. */
export async function readEngineHeader(path: string): Promise<EngineHeader> {
  const fh = await open(path, 'r').catch((err: Error) => {
    throw new FatalError('BAD_MODEL', `cannot open engine file ${path}: ${err.message}`, { cause: err });
  });
  try {
    const prefix = Buffer.alloc(PREFIX);
    await fh.read(prefix, 0, PREFIX, 0);
    if (!prefix.subarray(0, ENGINE_MAGIC.length).equals(ENGINE_MAGIC)) throw notAnEngine(path, 'no detq engine header');
    const length = Math.min(prefix.readUInt32LE(ENGINE_MAGIC.length), MAX_HEADER + 1);
    const head = Buffer.alloc(PREFIX + length);
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    return decodeHeader(head.subarray(0, bytesRead), path);
  } finally {
    await fh.close();
  }
}

/** Header and plan, the plan's size and sha256 checked against the header. */
export async function readEngineFile(path: string): Promise<{ header: EngineHeader; plan: Buffer }> {
  const bytes = await readFile(path).catch((err: Error) => {
    throw new FatalError('BAD_MODEL', `cannot read engine file ${path}: ${err.message}`, { cause: err });
  });
  const header = decodeHeader(bytes, path);
  const plan = bytes.subarray(PREFIX + bytes.readUInt32LE(ENGINE_MAGIC.length));
  if (plan.length !== header.planBytes) throw notAnEngine(path, `the plan has ${plan.length} bytes, the header says ${header.planBytes}: truncated or damaged`);
  if (sha256(plan) !== header.planSha256) throw notAnEngine(path, 'the plan does not match its checksum: damaged');
  return { header, plan };
}

/** Where a plan runs: this GPU and TensorRT library. */
export interface PlanTarget {
  gpu: string;
  computeCapability: string;
  tensorrt: string;
}

/**
 * Refuses a plan built for another GPU model, compute capability or TensorRT build: TensorRT plans
 * only load on the GPU model and exact TensorRT version that made them.
 */
export function checkEngineCompatible(header: EngineHeader, here: PlanTarget, path: string): void {
  const k = header.key;
  const differs: string[] = [];
  if (k.gpu !== here.gpu || k.computeCapability !== here.computeCapability)
    differs.push(`GPU ${k.gpu} (sm ${k.computeCapability}), this is ${here.gpu} (sm ${here.computeCapability})`);
  if (k.tensorrt !== here.tensorrt) differs.push(`TensorRT ${k.tensorrt}, this is TensorRT ${here.tensorrt}`);
  if (differs.length)
    throw new FatalError(
      'BAD_MODEL',
      `engine file ${path} was built for ${differs.join(' and for ')}. TensorRT plans are specific to a GPU model and TensorRT build: ` +
        'rebuild it here with `detq build-engine <model.onnx>`.',
    );
}
