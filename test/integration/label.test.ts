import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ImageRecord } from '@detq/core';
import { main } from '@detq/cli';
import { parseYoloTxt } from '@detq/formats';
import { badImages, COCO_IMAGES, cocoImageNames, SAMPLES, tempDir } from '../helpers/fixtures';

const readRecords = async (dir: string): Promise<ImageRecord[]> =>
  (await readFile(join(dir, 'detections.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as ImageRecord);

const detq = (...args: string[]) => main(['node', 'detq', ...args]);

describe('detq label on the sample images', () => {
  let out: string;
  beforeAll(async () => {
    out = await tempDir();
    expect(await detq('label', SAMPLES, '--out', out, '--previews', '2', '--formats', 'jsonl,coco,yolo,labelstudio', '--save-conf')).toBe(0);
  });

  it('finds the bus and the 4 people in bus.jpg at default thresholds', async () => {
    const bus = (await readRecords(out)).find((r) => r.key === 'bus.jpg')!;
    expect(bus).toMatchObject({ width: 810, height: 1080 });
    const names = bus.detections.map((d) => d.class_name).sort();
    expect(names).toEqual(['bus', 'person', 'person', 'person', 'person']);
    for (const d of bus.detections) expect(d.confidence).toBeGreaterThan(0.25);
    expect(bus.model).toMatchObject({ name: 'yolo11n-dyn.onnx', engine: 'onnxruntime-cpu', imgsz: [640, 640] });
  });

  it('writes previews that are JPEGs of the source size', async () => {
    const sharp = (await import('sharp')).default;
    const meta = await sharp(await readFile(join(out, 'previews/bus.jpg'))).metadata();
    expect(meta).toMatchObject({ format: 'jpeg', width: 810, height: 1080 });
  });

  it('renders the four formats box for box from the same records', async () => {
    const records = await readRecords(out);
    const coco = JSON.parse(await readFile(join(out, 'coco.json'), 'utf8'));
    const ls = JSON.parse(await readFile(join(out, 'labelstudio.json'), 'utf8'));
    for (const r of records) {
      const image = coco.images.find((i: { file_name: string }) => i.file_name === r.key);
      expect(image).toMatchObject({ width: r.width, height: r.height });
      const anns = coco.annotations.filter((a: { image_id: number }) => a.image_id === image.id);
      const yolo = parseYoloTxt(await readFile(join(out, 'labels', r.key.replace(/\.jpg$/, '.txt')), 'utf8'), r.width, r.height);
      const task = ls.find((t: { meta: { key: string } }) => t.meta.key === r.key);
      const result = task.predictions[0].result;
      expect(anns).toHaveLength(r.detections.length);
      expect(yolo).toHaveLength(r.detections.length);
      expect(result).toHaveLength(r.detections.length);
      r.detections.forEach((d, i) => {
        const [x1, y1, x2, y2] = d.box;
        const a = anns[i];
        expect(a.category_id).toBe(d.class_id + 1);
        expect(a.bbox[0]).toBeCloseTo(x1, 2);
        expect(a.bbox[1]).toBeCloseTo(y1, 2);
        expect(a.bbox[0] + a.bbox[2]).toBeCloseTo(x2, 1);
        expect(a.bbox[1] + a.bbox[3]).toBeCloseTo(y2, 1);
        // YOLO txt round-trips to the record's pixels (6 decimals of a normalised coordinate).
        expect(yolo[i]!.classId).toBe(d.class_id);
        yolo[i]!.box.forEach((v, k) => expect(Math.abs(v - d.box[k]!)).toBeLessThan(0.01));
        expect(yolo[i]!.confidence).toBeCloseTo(d.confidence, 4);
        const v = result[i].value;
        expect(v.rectanglelabels).toEqual([d.class_name]);
        expect((v.x / 100) * r.width).toBeCloseTo(x1, 4);
        expect(((v.y + v.height) / 100) * r.height).toBeCloseTo(y2, 4);
        expect(result[i]).toMatchObject({ original_width: r.width, original_height: r.height });
      });
    }
  });
});

describe('bad files among good images', () => {
  it('gives each bad file its own error record and labels the good ones exactly as without them', async () => {
    const clean = await tempDir();
    const mixed = await tempDir();
    const good = cocoImageNames(6);
    await mkdir(join(mixed, 'nested'), { recursive: true });
    for (const f of good) {
      await copyFile(join(COCO_IMAGES, f), join(clean, f));
      await copyFile(join(COCO_IMAGES, f), join(mixed, f));
    }
    const bad = badImages();
    for (const [name, { bytes }] of Object.entries(bad)) await writeFile(join(mixed, 'nested', name), bytes);
    await writeFile(join(mixed, 'README.txt'), 'not an image name: not listed');

    const outClean = await tempDir();
    const outMixed = await tempDir();
    expect(await detq('label', clean, '--out', outClean, '--batch', '4')).toBe(0);
    expect(await detq('label', mixed, '--out', outMixed, '--batch', '4')).toBe(0);

    const cleanRecords = await readRecords(outClean);
    const mixedRecords = await readRecords(outMixed);
    expect(mixedRecords).toHaveLength(good.length + Object.keys(bad).length);
    for (const [name, { code }] of Object.entries(bad)) {
      const r = mixedRecords.filter((x) => x.key === join('nested', name));
      expect(r, name).toHaveLength(1);
      expect(r[0]!.error?.code, name).toBe(code);
      expect(r[0]!.detections).toEqual([]);
    }
    const labelled = mixedRecords.filter((r) => !r.error);
    expect(labelled).toEqual(cleanRecords);
    expect(new Set(Object.values(bad).map((b) => b.code)).size).toBeGreaterThanOrEqual(6);
  });
});
