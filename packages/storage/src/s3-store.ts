import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import type { Readable } from 'node:stream';
import { Upload } from '@aws-sdk/lib-storage';
import { faultSettingsFromEnv } from '@detq/core';
import type { ListOptions, ObjectEntry, ObjectStore, ReadOptions } from './object-store';
import { parseS3Uri } from './s3-uri';
import { retryTransient } from './transient';

/**
 * S3 settings from the standard AWS variables plus S3_ENDPOINT / S3_FORCE_PATH_STYLE for S3-compatible
 * servers, and detq's S3 timeouts (without them a black-holed connection hangs a request forever) and
 * connection pool: kept-alive sockets, as many as DETQ_S3_MAX_SOCKETS, so a worker's reads in flight do
 * not queue behind the SDK's default 50 or pay a handshake each.
 */
export function s3ConfigFromEnv(env: NodeJS.ProcessEnv = process.env): S3ClientConfig {
  const { s3 } = faultSettingsFromEnv(env);
  const config: S3ClientConfig = {
    region: env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1',
    forcePathStyle: /^(1|true|yes)$/i.test(env.S3_FORCE_PATH_STYLE ?? ''),
    // The SDK's own retries absorb blips; longer outages are waited out by S3Store's outage budget.
    maxAttempts: 3,
    requestHandler: {
      connectionTimeout: s3.connectTimeoutMs,
      requestTimeout: s3.requestTimeoutMs,
      throwOnRequestTimeout: true,
      socketTimeout: s3.socketTimeoutMs,
      httpAgent: { keepAlive: true, maxSockets: s3.maxSockets },
      httpsAgent: { keepAlive: true, maxSockets: s3.maxSockets },
    },
  };
  if (env.S3_ENDPOINT) config.endpoint = env.S3_ENDPOINT;
  // Without explicit keys the SDK's default chain (process env, profiles, instance roles) applies.
  if (env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY)
    config.credentials = {
      accessKeyId: env.AWS_ACCESS_KEY_ID,
      secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
      ...(env.AWS_SESSION_TOKEN && { sessionToken: env.AWS_SESSION_TOKEN }),
    };
  return config;
}

export interface S3StoreOptions {
  /** How long transient failures of one operation are retried (DETQ_S3_OUTAGE_BUDGET_MS). */
  outageBudgetMs: number;
}

export function s3StoreOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): S3StoreOptions {
  return { outageBudgetMs: faultSettingsFromEnv(env).s3.outageBudgetMs };
}

/** Every operation waits out transient failures for the outage budget; permanent ones throw at once. */
export class S3Store implements ObjectStore {
  readonly client: S3Client;

  constructor(
    config: S3ClientConfig = s3ConfigFromEnv(),
    private readonly options: S3StoreOptions = s3StoreOptionsFromEnv(),
  ) {
    this.client = new S3Client(config);
  }

  private retry<T>(attempt: (signal?: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T> {
    return retryTransient(attempt, { budgetMs: this.options.outageBudgetMs, ...(signal && { signal }) });
  }

  async get(uri: string, options: ReadOptions = {}): Promise<Buffer> {
    const { bucket, key } = parseS3Uri(uri);
    // The body is read inside the attempt: a connection that dies mid-body is retried like one that never answered.
    return this.retry(async (abortSignal) => {
      const res = await this.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }), abortSignal ? { abortSignal } : {});
      if (!res.Body) return Buffer.alloc(0);
      return Buffer.from(await res.Body.transformToByteArray());
    }, options.signal);
  }

  async put(uri: string, body: Buffer | string, contentType?: string, options: ReadOptions = {}): Promise<void> {
    const { bucket, key } = parseS3Uri(uri);
    await this.retry(
      (abortSignal) => this.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: contentType }), abortSignal ? { abortSignal } : {}),
      options.signal,
    );
  }

  /**
   * lib-storage's Upload: one PUT below a part's size, a multipart upload above it, parts sent a few at a
   * time, so an output of any size (S3's single-PUT limit is 5 GB) streams through bounded memory.
   */
  async upload(uri: string, open: () => Readable, contentType?: string): Promise<void> {
    const { bucket, key } = parseS3Uri(uri);
    await this.retry(() => new Upload({ client: this.client, params: { Bucket: bucket, Key: key, Body: open(), ContentType: contentType }, queueSize: 4 }).done());
  }

  async exists(uri: string): Promise<boolean> {
    const { bucket, key } = parseS3Uri(uri);
    return this.retry(async () => {
      try {
        await this.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
        return true;
      } catch (err) {
        const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
        if (status === 404) return false;
        throw err;
      }
    });
  }

  /**
   * Pages by StartAfter (the last key of the previous page) rather than continuation tokens, so a fresh
   * and a resumed listing (startAfter: the last key a planner recorded) are the same requests.
   */
  async *list(prefixUri: string, options: ListOptions = {}): AsyncIterable<ObjectEntry> {
    const { bucket, key: prefix } = parseS3Uri(prefixUri);
    let after = options.startAfter === undefined ? undefined : parseS3Uri(options.startAfter).key;
    for (;;) {
      const page = await this.retry(() => this.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ...(after && { StartAfter: after }) })));
      for (const o of page.Contents ?? []) {
        if (!o.Key || o.Key.endsWith('/')) continue;
        yield { uri: `s3://${bucket}/${o.Key}`, size: o.Size ?? 0, etag: o.ETag?.replaceAll('"', '') };
      }
      const last = page.Contents?.at(-1)?.Key;
      if (!page.IsTruncated || !last) return;
      after = last;
    }
  }

  destroy(): void {
    this.client.destroy();
  }
}
