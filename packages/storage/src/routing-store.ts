import { FileStore } from './file-store';
import type { Readable } from 'node:stream';
import { isS3Uri, type ListOptions, type ObjectEntry, type ObjectStore, type ReadOptions } from './object-store';
import { S3Store } from './s3-store';

/** Sends s3:// URIs to S3 (created on first use) and everything else to the filesystem. */
export class RoutingStore implements ObjectStore {
  private s3?: S3Store;
  private readonly files = new FileStore();

  constructor(private readonly makeS3: () => S3Store = () => new S3Store()) {}

  private pick(uri: string): ObjectStore {
    if (!isS3Uri(uri)) return this.files;
    this.s3 ??= this.makeS3();
    return this.s3;
  }

  get(uri: string, options?: ReadOptions): Promise<Buffer> {
    return this.pick(uri).get(uri, options);
  }

  put(uri: string, body: Buffer | string, contentType?: string, options?: ReadOptions): Promise<void> {
    return this.pick(uri).put(uri, body, contentType, options);
  }

  exists(uri: string): Promise<boolean> {
    return this.pick(uri).exists(uri);
  }

  upload(uri: string, open: () => Readable, contentType?: string): Promise<void> {
    return this.pick(uri).upload(uri, open, contentType);
  }

  list(prefixUri: string, options?: ListOptions): AsyncIterable<ObjectEntry> {
    return this.pick(prefixUri).list(prefixUri, options);
  }

  close(): void {
    this.s3?.destroy();
  }
}
