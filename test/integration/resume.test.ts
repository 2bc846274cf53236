import { spawn } from 'node:child_process';
import { appendFile, mkdir, readFile, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { EXIT_CODES, REPO_ROOT, runSummarySchema } from '@detq/core';
import { main } from '@detq/cli';
import { COCO_IMAGES, cocoImageNames, MODEL_INT8_320, tempDir } from '../helpers/fixtures';

const detq = (...args: string[]) => main(['node', 'detq', ...args]);
const lines = async (out: string) => (await readFile(join(out, 'detections.jsonl'), 'utf8').catch(() => '')).split('\n').filter(Boolean);

describe('detq label --resume', () => {
  afterEach(() => vi.restoreAllMocks());

  it('after a SIGKILL mid-run gives the same records as one uninterrupted run, each image exactly once', async () => {
    const dir = await tempDir();
    const input = join(dir, 'in');
    await mkdir(input);
    const names = cocoImageNames(24);
    for (const n of names) await symlink(join(COCO_IMAGES, n), join(input, n));
    // Batch 1 on one thread: every record is computed alone, so both runs give bit-identical boxes. The
    // small int8 model keeps the three runs short.
    const flags = ['--model', MODEL_INT8_320, '--batch', '1', '--threads', '1', '--formats', 'jsonl,coco'];
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true);

    const whole = join(dir, 'whole');
    expect(await detq('label', input, '--out', whole, ...flags)).toBe(0);

    // The same run in a real process, killed without warning once some records are on disk.
    const out = join(dir, 'out');
    const child = spawn(process.execPath, [join(REPO_ROOT, 'apps/cli/bin/detq.js'), 'label', input, '--out', out, ...flags], { stdio: 'ignore' });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
    while ((await lines(out)).length < 4) await new Promise((r) => setTimeout(r, 50));
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    const before = await lines(out);
    expect(before.length).toBeLessThan(names.length);
    // A crash inside a write leaves half a line: the resume drops it (that image is labelled again).
    await appendFile(join(out, 'detections.jsonl'), before.at(-1)!.slice(0, 40));

    // Other params than the interrupted run's are refused, naming the difference.
    const err: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((c: string | Uint8Array) => (err.push(String(c)), true));
    expect(await detq('label', input, '--out', out, ...flags, '--resume', '--conf', '0.5')).toBe(EXIT_CODES.USAGE);
    expect(err.join('')).toMatch(/--resume: .* was labelled with params .*"conf":0.25.*this run uses .*"conf":0.5/);

    expect(await detq('label', input, '--out', out, ...flags, '--resume')).toBe(0);
    expect(await lines(out)).toEqual(await lines(whole));
    const summary = runSummarySchema.parse(JSON.parse(await readFile(join(out, 'summary.json'), 'utf8')));
    expect(summary.counts).toMatchObject({ total: names.length, resumed: before.length });
    // The other formats are rendered from the whole file at the end.
    const coco = (f: string) => readFile(f, 'utf8').then((t) => JSON.parse(t) as { images: unknown[]; annotations: unknown[] });
    const [a, b] = [await coco(join(out, 'coco.json')), await coco(join(whole, 'coco.json'))];
    expect(a.images).toEqual(b.images);
    expect(a.annotations).toEqual(b.annotations);
  });
});
