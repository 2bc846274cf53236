import type { Readable } from 'node:stream';
import type { ListOptions, ObjectEntry, ObjectStore } from '@detq/storage';

/**
 * Wraps the input store of one chunk and remembers whether a read failed for a reason that may pass
 * (network, 5xx, throttling) rather than one that will not (404, 403). The chunk is then retried with
 * backoff instead of recording READ_FAILED for images that were only briefly unreachable.
 */
export class TransientReadTracker implements ObjectStore {
  /** The first transient failure seen, if any. */
  transient?: Error;

  constructor(private readonly inner: ObjectStore) {}

  async get(uri: string): Promise<Buffer> {
    try {
      return await this.inner.get(uri);
    } catch (err) {
      if (TransientReadTracker.isTransient(err)) this.transient ??= err as Error;
      throw err;
    }
  }

  static isTransient(err: unknown): boolean {
    const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    const code = (err as { code?: string }).code;
    if (code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR') return false;
    return status === undefined || status >= 500 || status === 429;
  }

  put(uri: string, body: Buffer | string, contentType?: string): Promise<void> {
    return this.inner.put(uri, body, contentType);
  }

  upload(uri: string, body: Readable, contentType?: string): Promise<void> {
    return this.inner.upload(uri, body, contentType);
  }

  list(prefixUri: string, options?: ListOptions): AsyncIterable<ObjectEntry> {
    return this.inner.list(prefixUri, options);
  }

  exists(uri: string): Promise<boolean> {
    return this.inner.exists(uri);
  }
}
