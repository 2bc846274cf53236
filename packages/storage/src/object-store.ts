import type { Readable } from 'node:stream';

/** One object found by a listing. `uri` is absolute (a filesystem path or s3://bucket/key). */
export interface ObjectEntry {
  uri: string;
  size: number;
  /** Content fingerprint when the store has one (S3 ETag, or mtime+size for files). */
  etag?: string;
}

export interface ListOptions {
  /**
   * Resume a listing: only entries after this URI in the listing's order (S3's StartAfter), so a planner
   * that recorded the last key it planned continues from there.
   */
  startAfter?: string;
}

/** Lets a caller stop a request it no longer needs (cancel, lost lock, deadline, shutdown). */
export interface ReadOptions {
  signal?: AbortSignal;
}

/**
 * The narrow storage interface every layer uses. Implementations: FileStore (paths, file://) and
 * S3Store (s3://). RoutingStore picks one per URI so callers never branch on the scheme.
 */
export interface ObjectStore {
  get(uri: string, options?: ReadOptions): Promise<Buffer>;
  put(uri: string, body: Buffer | string, contentType?: string, options?: ReadOptions): Promise<void>;
  /**
   * Writes a body of any size from a stream: multipart on S3, so memory does not grow with the object.
   * `open` is called once per attempt, so a transient failure retries the whole upload from the start.
   */
  upload(uri: string, open: () => Readable, contentType?: string): Promise<void>;
  /** Recursive listing under a prefix, page by page, in a stable key order. */
  list(prefixUri: string, options?: ListOptions): AsyncIterable<ObjectEntry>;
  /** Whether an object exists. */
  exists(uri: string): Promise<boolean>;
}

export function isS3Uri(uri: string): boolean {
  return uri.startsWith('s3://');
}

/** Joins a prefix (folder or s3:// prefix) and a relative key with exactly one separator. */
export function joinUri(prefix: string, key: string): string {
  return `${prefix.replace(/\/+$/, '')}/${key.replace(/^\/+/, '')}`;
}
