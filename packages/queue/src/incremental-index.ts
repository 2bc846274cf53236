import { createHash } from 'node:crypto';
import type { DetectParams } from '@detq/core';
import type { RedisClient } from './config';

export interface IndexedImage {
  uri: string;
  etag?: string;
}

/** A labelled image and where its record is: line `line` of the object `result`. */
export interface LabelledImage extends IndexedImage {
  result: string;
  line: number;
}

/**
 * Which images were already labelled with a given model and params: a Redis hash per (model sha256,
 * params) fingerprint mapping image URI to `etag \t result \t line` — the ETag it had when labelled and
 * where its record is, so a run that skips it can point at that record. A changed object (new ETag) is
 * labelled again; an image without an ETag is always labelled. These hashes never expire: they are the
 * memory of what was labelled.
 */
export class IncrementalIndex {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {}

  static fingerprint(modelSha256: string, params: DetectParams, imgsz: readonly number[]): string {
    // Key order is fixed by the schema's parse, so equal params hash equally.
    return createHash('sha256').update(JSON.stringify({ modelSha256, params, imgsz })).digest('hex').slice(0, 32);
  }

  private key(fingerprint: string): string {
    return `${this.prefix}:detq:index:${fingerprint}`;
  }

  /**
   * Splits `batch` into images to label and images already labelled in their current version, with the
   * location of their record (one HMGET per batch).
   */
  async partition<T extends IndexedImage>(fingerprint: string, batch: readonly T[]): Promise<{ fresh: T[]; done: (T & LabelledImage)[] }> {
    const fresh: T[] = [];
    const done: (T & LabelledImage)[] = [];
    if (batch.length === 0) return { fresh, done };
    const seen = await this.redis.hmget(this.key(fingerprint), ...batch.map((i) => i.uri));
    batch.forEach((img, i) => {
      const [etag, result, line] = (seen[i] ?? '').split('\t');
      if (img.etag && etag === img.etag && result && line) done.push({ ...img, result, line: Number(line) });
      else fresh.push(img);
    });
    return { fresh, done };
  }

  /** Marks images as labelled, with where their records are (one HSET per chunk). */
  async record(fingerprint: string, images: readonly LabelledImage[]): Promise<void> {
    const fields = images.filter((i) => i.etag).flatMap((i) => [i.uri, `${i.etag}\t${i.result}\t${i.line}`]);
    if (fields.length > 0) await this.redis.hset(this.key(fingerprint), ...fields);
  }
}
