import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { ObjectStore } from '@detq/storage';
import { badFiles, type Manifest } from './helpers';
import { cocoImageNames, COCO_IMAGES } from '../helpers/fixtures';

/** A set whose keys are in `input`, with the expected error code of each bad one. */
export interface FaultSet {
  keys: string[];
  bad: Record<string, string>;
}

/**
 * Uploads `good` coco images and the 8 kinds of bad files under `prefix`, each bad file named to sort
 * right after a different coco image, so with small chunks the bad files land in several chunks.
 */
export async function uploadSpreadSet(store: ObjectStore, prefix: string, good: number): Promise<FaultSet> {
  const names = cocoImageNames(good);
  const kinds = Object.entries(badFiles());
  const bad: Record<string, string> = {};
  const step = Math.max(1, Math.floor(names.length / kinds.length));
  await Promise.all(names.map((n) => store.put(`${prefix}${n}`, readFileSync(join(COCO_IMAGES, n)))));
  await Promise.all(
    kinds.map(([kind, f], i) => {
      const key = `${names[Math.min(i * step, names.length - 1)]!.replace(/\.jpg$/, '')}-${kind.replace('bad/', '')}`;
      bad[key] = f.code;
      return store.put(`${prefix}${key}`, f.bytes);
    }),
  );
  return { keys: [...names, ...Object.keys(bad)].sort(), bad };
}

/**
 * The exactly-once contract of a finished job: every input key once in manifest.json and once in
 * detections.jsonl, every bad file with its exact code, every good one labelled.
 */
export async function expectEveryKeyOnce(store: ObjectStore, output: string, set: FaultSet): Promise<void> {
  const manifest = JSON.parse((await store.get(`${output}manifest.json`)).toString()) as Manifest;
  expect(manifest.images.map((i) => i.key).sort()).toEqual(set.keys);
  const lines = (await store.get(`${output}detections.jsonl`)).toString().trim().split('\n');
  expect(lines.map((l) => (JSON.parse(l) as { key: string }).key).sort()).toEqual(set.keys);
  for (const e of manifest.images) {
    if (e.key in set.bad) expect(e.error?.code, e.key).toBe(set.bad[e.key]);
    else expect(e.error, e.key).toBeUndefined();
  }
}
