import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { EXIT_CODES, runSummarySchema } from '@detq/core';
import { main } from '@detq/cli';
import { COCO_IMAGES, cocoImageNames, MODEL_INT8_320, SAMPLES, tempDir } from '../helpers/fixtures';

const detq = (...args: string[]) => main(['node', 'detq', ...args]);

function captureStderr() {
  const chunks: string[] = [];
  vi.spyOn(process.stderr, 'write').mockImplementation((c: string | Uint8Array) => (chunks.push(String(c)), true));
  return () => chunks.join('');
}

describe('detq CLI exit codes and messages', () => {
  afterEach(() => vi.restoreAllMocks());

  it('names the bad flag and exits 2', async () => {
    const err = captureStderr();
    expect(await detq('label', SAMPLES, '--out', await tempDir(), '--conf', '2', '--formats', 'jsonl,xml')).toBe(EXIT_CODES.USAGE);
    expect(err()).toMatch(/--conf: .*<=1/);
    expect(err()).toMatch(/--formats: .*"xml"/);
  });

  it('exits 2 on a missing --out and on an unknown class name', async () => {
    captureStderr();
    expect(await detq('label', SAMPLES)).toBe(EXIT_CODES.USAGE);
    const err = captureStderr();
    expect(await detq('label', SAMPLES, '--out', await tempDir(), '--classes', 'unicorn')).toBe(EXIT_CODES.USAGE);
    expect(err()).toMatch(/--classes: unknown class name 'unicorn'/);
  });

  it('queue commands check their env like the worker and the API: a bad value exits 2 naming the variable', async () => {
    const err = captureStderr();
    vi.stubEnv('DETQ_JOB_TTL', 'a week');
    expect(await detq('status', 'some-job')).toBe(EXIT_CODES.USAGE);
    vi.unstubAllEnvs();
    expect(err()).toMatch(/DETQ_JOB_TTL: must be seconds or a number with s, m, h or d/);
  });

  it('exits 3 for a missing or broken model', async () => {
    let err = captureStderr();
    expect(await detq('label', SAMPLES, '--out', await tempDir(), '--model', '/nonexistent/m.onnx')).toBe(EXIT_CODES.BAD_MODEL);
    expect(err()).toMatch(/model file not found: \/nonexistent\/m.onnx \(--model\)/);
    const broken = join(await tempDir(), 'broken.onnx');
    await writeFile(broken, 'not a model');
    err = captureStderr();
    expect(await detq('label', SAMPLES, '--out', await tempDir(), '--model', broken)).toBe(EXIT_CODES.BAD_MODEL);
    expect(err()).toMatch(/broken.onnx/);
  });

  it('exits 4 for an unwritable output and 5 for a missing input', async () => {
    // A file where the output folder should go (chmod would not stop root, which CI runs as).
    const blocker = join(await tempDir(), 'file');
    await writeFile(blocker, 'x');
    let err = captureStderr();
    expect(await detq('label', SAMPLES, '--out', join(blocker, 'out'))).toBe(EXIT_CODES.OUTPUT_FAILED);
    expect(err()).toMatch(/cannot write to --out/);
    err = captureStderr();
    expect(await detq('label', '/nonexistent/images', '--out', await tempDir())).toBe(EXIT_CODES.INPUT_NOT_FOUND);
    expect(err()).toMatch(/input not found/);
  });

  it('accepts a single file, a glob, a list file and a 320-input int8 model; --json prints the summary', async () => {
    const dir = await tempDir();
    await mkdir(join(dir, 'sub'));
    const [a, b, c] = cocoImageNames(3);
    for (const f of [a!, b!]) await copyFile(join(COCO_IMAGES, f), join(dir, f));
    await copyFile(join(COCO_IMAGES, c!), join(dir, 'sub', c!));
    await writeFile(join(dir, 'list.txt'), `# two images\n${a}\nsub/${c}\n`);

    const runs: [string, string[]][] = [
      [join(dir, a!), [a!]],
      [`${dir}/**/*.jpg`, [a!, b!, `sub/${c}`]],
      [join(dir, 'list.txt'), [a!, `sub/${c}`]],
    ];
    for (const [input, keys] of runs) {
      const out = await tempDir();
      expect(await detq('label', input, '--out', out), input).toBe(0);
      const got = (await readFile(join(out, 'detections.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l).key);
      expect(got, input).toEqual(keys);
    }

    const out = await tempDir();
    const writes: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => (writes.push(String(s)), true));
    expect(await detq('label', join(dir, a!), '--out', out, '--model', MODEL_INT8_320, '--json')).toBe(0);
    const summary = JSON.parse(writes.join(''));
    expect(runSummarySchema.parse(summary)).toMatchObject({ counts: { total: 1, labelled: 1, failed: 0 }, provenance: { model: { name: 'yolo11n_int8_320.onnx', imgsz: [320, 320] } } });
    expect(summary.counts.detections).toBeGreaterThan(0);
    expect(JSON.parse(await readFile(join(out, 'summary.json'), 'utf8'))).toEqual(summary);
  });
});
