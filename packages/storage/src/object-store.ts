/** One object found by a listing. `uri` is absolute (a filesystem path or s3://bucket/key). */
export interface ObjectEntry {
  uri: string;
  size: number;
  /** Content fingerprint when the store has one (S3 ETag, or mtime+size for files). */
  etag?: string;
}

/**
 * The narrow storage interface every layer uses. Implementations: FileStore (paths, file://) and
 * S3Store (s3://). RoutingStore picks one per URI so callers never branch on the scheme.
 */
/** Lets a caller stop a request it no longer needs (cancel, lost lock, deadline, shutdown). */
export interface ReadOptions {
  signal?: AbortSignal;
}

export interface ObjectStore {
  get(uri: string, options?: ReadOptions): Promise<Buffer>;
  put(uri: string, body: Buffer | string, contentType?: string, options?: ReadOptions): Promise<void>;
  /** Recursive listing under a prefix, page by page, in key order. */
  list(prefixUri: string): AsyncIterable<ObjectEntry>;
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
