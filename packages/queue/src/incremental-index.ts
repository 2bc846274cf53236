import { createHash } from 'node:crypto';
import type { DetectParams } from '@detq/core';
import type { RedisClient } from './config';

export interface IndexedImage {
  uri: string;
  etag?: string;
}

/**
 * Which images were already labelled with a given model and params: a Redis hash per (model sha256,
 * params) fingerprint mapping image URI to the ETag it had when labelled. A changed object (new ETag) is
 * labelled again; an image without an ETag is always labelled.
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

  /** The images of `batch` not yet labelled in their current version (one HMGET per batch). */
  async unseen<T extends IndexedImage>(fingerprint: string, batch: readonly T[]): Promise<T[]> {
    if (batch.length === 0) return [];
    const seen = await this.redis.hmget(this.key(fingerprint), ...batch.map((i) => i.uri));
    return batch.filter((img, i) => !img.etag || seen[i] !== img.etag);
  }

  /** Marks images as labelled (one HSET per chunk). */
  async record(fingerprint: string, images: readonly IndexedImage[]): Promise<void> {
    const fields = images.filter((i) => i.etag).flatMap((i) => [i.uri, i.etag!]);
    if (fields.length > 0) await this.redis.hset(this.key(fingerprint), ...fields);
  }
}
