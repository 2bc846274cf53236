import type { Readable } from 'node:stream';
import { isTransientStorageError, type ListOptions, type ObjectEntry, type ObjectStore, type ReadOptions } from '@detq/storage';

/**
 * Wraps the input store of one chunk and remembers whether a read failed for a reason that may pass
 * (the store already waited out its outage budget) rather than one that will not (404, 403). The chunk
 * is then retried instead of recording READ_FAILED for images that were only unreachable.
 */
export class TransientReadTracker implements ObjectStore {
  /** The first transient failure seen, if any. */
  transient?: Error;

  constructor(private readonly inner: ObjectStore) {}

  async get(uri: string, options?: ReadOptions): Promise<Buffer> {
    try {
      return await this.inner.get(uri, options);
    } catch (err) {
      if (isTransientStorageError(err)) this.transient ??= err as Error;
      throw err;
    }
  }

  put(uri: string, body: Buffer | string, contentType?: string, options?: ReadOptions): Promise<void> {
    return this.inner.put(uri, body, contentType, options);
  }

  upload(uri: string, open: () => Readable, contentType?: string): Promise<void> {
    return this.inner.upload(uri, open, contentType);
  }

  list(prefixUri: string, options?: ListOptions): AsyncIterable<ObjectEntry> {
    return this.inner.list(prefixUri, options);
  }

  exists(uri: string): Promise<boolean> {
    return this.inner.exists(uri);
  }
}
