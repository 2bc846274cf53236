import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  checkEngineCompatible,
  readEngineFile,
  readEngineHeader,
  writeEngineFile,
  type EngineHeaderFields,
} from '@detq/inference';

const fields: EngineHeaderFields = {
  key: {
    modelSha256: 'a'.repeat(64),
    gpu: 'NVIDIA H100 80GB HBM3',
    computeCapability: '9.0',
    tensorrt: '10.16.0.72',
    precision: 'fp16',
    input: 'images',
    min: '1x3x640x640',
    opt: '16x3x640x640',
    max: '32x3x640x640',
    profiles: 2,
  },
  quantization: 'none',
  model: 'yolo11n-dyn.onnx',
  classNames: ['person', 'bicycle'],
  end2end: false,
  builtAt: '2026-11-25T11:00:00.000Z',
};
const plan = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7) % 256));
const here = { gpu: 'NVIDIA H100 80GB HBM3', computeCapability: '9.0', tensorrt: '10.16.0.72' };

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'detq-engine-file-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('engine file', () => {
  it('round-trips header and plan, with the checksum filled in, and leaves no temp file', async () => {
    const path = join(dir, 'a.engine');
    const written = await writeEngineFile(path, fields, plan);
    expect(written.planBytes).toBe(4096);
    expect(written.planSha256).toMatch(/^[0-9a-f]{64}$/);
    const read = await readEngineFile(path);
    expect(read.header).toEqual(written);
    expect(read.header).toMatchObject(fields);
    expect(Buffer.compare(read.plan, plan)).toBe(0);
    expect(await readEngineHeader(path)).toEqual(written);
    expect(await readdir(dir)).toEqual(['a.engine']);
  });

  it('refuses a plan whose bytes do not match the checksum, and a truncated one', async () => {
    const path = join(dir, 'b.engine');
    await writeEngineFile(path, fields, plan);
    const bytes = await readFile(path);
    bytes[bytes.length - 10]! ^= 0xff;
    await writeFile(path, bytes);
    await expect(readEngineFile(path)).rejects.toThrow(/b\.engine is not a usable detq TensorRT engine file \(the plan does not match its checksum: damaged\): rebuild it/);
    await writeFile(path, bytes.subarray(0, bytes.length - 100));
    await expect(readEngineFile(path)).rejects.toThrow(/the plan has 3996 bytes, the header says 4096: truncated or damaged/);
  });

  it('refuses a file without a detq header (a bare TensorRT plan)', async () => {
    const path = join(dir, 'bare.plan');
    await writeFile(path, plan);
    await expect(readEngineFile(path)).rejects.toMatchObject({ exit: 'BAD_MODEL', message: expect.stringMatching(/no detq engine header/) });
    await expect(readEngineHeader(path)).rejects.toThrow(/no detq engine header/);
  });

  it('refuses a plan for another GPU, compute capability or TensorRT build', async () => {
    const { header } = await readEngineFile(await writeEngineFile(join(dir, 'c.engine'), fields, plan).then(() => join(dir, 'c.engine')));
    expect(() => checkEngineCompatible(header, here, 'c.engine')).not.toThrow();
    expect(() => checkEngineCompatible(header, { ...here, gpu: 'NVIDIA L4', computeCapability: '8.9' }, 'c.engine')).toThrow(
      'engine file c.engine was built for GPU NVIDIA H100 80GB HBM3 (sm 9.0), this is NVIDIA L4 (sm 8.9). TensorRT plans are specific to a GPU model and TensorRT build: rebuild it here with `detq build-engine <model.onnx>`.',
    );
    // Same version, another build number: still refused.
    expect(() => checkEngineCompatible(header, { ...here, tensorrt: '10.16.0.80' }, 'c.engine')).toThrow(/built for TensorRT 10\.16\.0\.72, this is TensorRT 10\.16\.0\.80/);
    expect(() => checkEngineCompatible(header, { ...here, tensorrt: '11.1.0.106' }, 'c.engine')).toThrow(/this is TensorRT 11\.1\.0\.106/);
  });

  it('refuses to write a header that fails its schema, leaving nothing behind', async () => {
    const path = join(dir, 'bad.engine');
    await expect(writeEngineFile(path, { ...fields, key: { ...fields.key, tensorrt: '10.16' } }, plan)).rejects.toThrow();
    expect((await readdir(dir)).filter((f) => f.startsWith('bad'))).toEqual([]);
  });
});
