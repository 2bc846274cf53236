import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectParamsSchema, type ImageRecord } from '@detq/core';
import { DeviceDecodeError, type Engine, type Frame, type FrameOutcome } from '@detq/inference';
import { Batcher, FramePreparer, labelStream, openEngine, type LabelContext, type OpenedEngine } from '@detq/pipeline';
import { FileStore } from '@detq/storage';
import { MODEL_DYN, tempDir } from '../helpers/fixtures';
import { oddImages } from '../helpers/odd-jpegs';

// The encoded-frame path and its CPU fallback, without a GPU: an engine that takes 'encoded' JPEGs but
// refuses to decode any (as nvJPEG refuses a stream it cannot take) must give every image exactly the
// record the CPU path gives: same size, same boxes, same error code. The inner engine is the real
// onnxruntime-cpu engine; the wrapper only injects the decode refusal.
class RefusingDecoder implements Engine {
  readonly info;
  readonly encodedSeen: string[] = [];
  constructor(private readonly inner: Engine) {
    this.info = { ...inner.info, encodedFormats: ['jpeg'] as const };
  }
  async infer(frames: readonly Frame[], params: typeof detectParamsSchema._output): Promise<FrameOutcome[]> {
    const decoded = frames.filter((f) => f.layout !== 'encoded');
    const out = decoded.length ? await this.inner.infer(decoded, params) : [];
    let next = 0;
    return frames.map((f) => {
      if (f.layout !== 'encoded') return out[next++]!;
      this.encodedSeen.push(`${f.width}x${f.height}/${f.orientation}`);
      return new DeviceDecodeError('not supported by this decoder');
    });
  }
  dispose() {
    return this.inner.dispose();
  }
}

let dir: string;
let opened: OpenedEngine;
let names: string[];

beforeAll(async () => {
  dir = await tempDir('detq-fallback-');
  const files = await oddImages();
  names = Object.keys(files).sort();
  await mkdir(join(dir, 'in'));
  for (const n of names) await writeFile(join(dir, 'in', n), files[n]!);
  opened = await openEngine({ engine: 'onnxruntime-cpu', model: MODEL_DYN, maxBatch: 4, threads: 2 });
}, 120_000);

afterAll(async () => {
  await opened?.engine.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function label(engine: Engine): Promise<ImageRecord[]> {
  // One frame per engine call: onnxruntime's numbers may depend on the batch an image shares, and
  // batch composition depends on timing; the comparison must not.
  const batcher = new Batcher(engine, { maxBatch: 1, maxWaitMs: 0 });
  const ctx: LabelContext = {
    store: new FileStore(),
    preparer: new FramePreparer(engine.info),
    batcher,
    model: opened.model,
    names: opened.names,
    params: detectParamsSchema.parse({}),
    window: 8,
  };
  async function* sources() {
    for (const n of names) yield { key: n, uri: join(dir, 'in', n) };
  }
  const records: ImageRecord[] = [];
  for await (const { record } of labelStream(sources(), ctx)) records.push(record);
  await batcher.close();
  return records;
}

describe('encoded frames the device cannot decode', () => {
  it('get exactly the CPU path result or error code, and only GPU-decodable JPEGs leave as encoded frames', async () => {
    const cpu = await label(opened.engine);
    const refusing = new RefusingDecoder(opened.engine);
    const fallback = await label(refusing);
    // Error messages carry libvips' text, which its shared error buffer lets vary under concurrency:
    // the records are compared with the code alone.
    const comparable = (rs: ImageRecord[]) => rs.map(({ error, ...r }) => ({ ...r, code: error?.code }));
    expect(comparable(fallback)).toEqual(comparable(cpu));
    // The 8 orientations, the grey JPEG and the three baseline JPEGs with a damaged or missing end (the
    // device's decoder checks the scan) went out encoded, at the oriented size from the header;
    // progressive, CMYK, PNG and empty files went straight to sharp.
    expect(refusing.encodedSeen.sort()).toEqual(
      [...[1, 2, 3, 4].map((o) => `405x540/${o}`), ...[5, 6, 7, 8].map((o) => `540x405/${o}`), '405x540/1', ...Array(3).fill('640x480/1')].sort(),
    );
    const codes = Object.fromEntries(cpu.map((r) => [r.key, r.error?.code ?? 'OK']));
    expect(codes).toMatchObject({ 'truncated.jpg': 'TRUNCATED', 'header-only.jpg': 'TRUNCATED', 'corrupt.jpg': 'CORRUPT', 'empty.jpg': 'EMPTY_FILE', 'cmyk.jpg': 'OK', 'progressive.jpg': 'OK', 'photo.png': 'OK' });
    expect(cpu.find((r) => r.key === 'orientation-6.jpg')).toMatchObject({ width: 540, height: 405 });
    expect(cpu.find((r) => r.key === 'orientation-1.jpg')!.detections.length).toBeGreaterThan(0);
  }, 120_000);
});
