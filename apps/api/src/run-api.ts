import { watchFile, unwatchFile } from 'node:fs';
import { GetObjectCommand, HeadObjectCommand, ListBucketsCommand, type S3Client } from '@aws-sdk/client-s3';
import { apiEnvSchema, faultSettingsFromEnv, parseEnv } from '@detq/core';
import { checkRedisDurability, connectProducerRedis, DetqQueues, queueConfigFromEnv } from '@detq/queue';
import { parseS3Uri, S3Store, s3ConfigFromEnv, s3StoreOptionsFromEnv } from '@detq/storage';
import { createMetricsServer, createServer } from './create-server';
import { readTokensFile, TokenStore } from './token-store';

/**
 * Loads the tokens file into the store and publishes each principal's scopes and caps to Redis for
 * the workers. A file that does not parse leaves the previous tokens in force.
 */
export async function loadTokens(path: string, tokens: TokenStore, queues: DetqQueues, caps: Parameters<TokenStore['principals']>[0], log: (line: string) => void): Promise<void> {
  try {
    tokens.replace(readTokensFile(path));
  } catch (err) {
    log(`tokens file not reloaded: ${(err as Error).message}`);
    return;
  }
  await queues.principals.replaceAll(tokens.principals(caps)).catch((err: Error) => log(`principals not published: ${err.message}`));
}

/** Manifests up to this size have their lines checked at enqueue (403); bigger ones at planning (FORBIDDEN). */
export const ENQUEUE_MANIFEST_CHECK_BYTES = 1024 * 1024;

/** Reads an object when its size (from HEAD, before any download) is at most `maxBytes`. */
export function smallObjectReader(client: S3Client, maxBytes = ENQUEUE_MANIFEST_CHECK_BYTES) {
  return async (uri: string): Promise<string | undefined> => {
    const { bucket, key } = parseS3Uri(uri);
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    if ((head.ContentLength ?? Infinity) > maxBytes) return undefined;
    const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return res.Body?.transformToString('utf8');
  };
}

/** `detq api`: config from the env (EnvError, exit 2, on a bad value), serves until SIGTERM/SIGINT. */
export async function runApi(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const e = parseEnv(apiEnvSchema, env);
  const log = (line: string) => console.error(`detq api: ${line}`);
  const tokens = new TokenStore(readTokensFile(e.DETQ_API_TOKENS_FILE));
  const queues = new DetqQueues(queueConfigFromEnv(env), connectProducerRedis(e.REDIS_URL));
  // Checked on the first connection, not before serving: an API started while Redis is down answers 503
  // until it is up. A Redis that would lose jobs stops the API (exit 2) as it stops a worker.
  queues.redis.once('ready', () => {
    checkRedisDurability(queues.redis, faultSettingsFromEnv(env).allowVolatileRedis).then(
      (warnings) => warnings.forEach(log),
      (err: Error) => {
        log(err.message);
        process.exit(2);
      },
    );
  });
  const caps = { maxImgsz: e.DETQ_MAX_IMGSZ, maxImages: e.DETQ_MAX_IMAGES, maxObjectBytes: e.DETQ_MAX_OBJECT_BYTES };
  const reload = () => void loadTokens(e.DETQ_API_TOKENS_FILE, tokens, queues, caps, log);
  // Published again on every (re)connect: a Redis that lost its data still learns the tokens.
  queues.redis.on('ready', reload);
  watchFile(e.DETQ_API_TOKENS_FILE, { interval: 1000 }, reload);
  process.on('SIGHUP', reload);
  const s3 = new S3Store(s3ConfigFromEnv(env), s3StoreOptionsFromEnv(env));
  const app = await createServer({
    queues,
    tokens,
    s3Ready: async () => void (await s3.client.send(new ListBucketsCommand({}))),
    bodyLimit: e.DETQ_API_BODY_LIMIT,
    webhooks: { hosts: e.DETQ_WEBHOOK_HOSTS, allowPrivate: e.DETQ_WEBHOOK_ALLOW_PRIVATE },
    quotas: { ratePerSecond: e.DETQ_RATE_LIMIT, maxActiveJobs: e.DETQ_MAX_ACTIVE_JOBS, maxQueuedImages: e.DETQ_MAX_QUEUED_IMAGES },
    caps,
    minScheduleIntervalS: e.DETQ_MIN_SCHEDULE_INTERVAL_S,
    readManifest: smallObjectReader(s3.client),
    metricsRoute: e.DETQ_METRICS_PORT === undefined,
    logger: true,
    store: s3,
  });
  const metrics = e.DETQ_METRICS_PORT === undefined ? undefined : createMetricsServer(queues);
  await app.listen({ port: e.DETQ_API_PORT, host: e.DETQ_API_HOST });
  if (metrics) await metrics.listen({ port: e.DETQ_METRICS_PORT!, host: e.DETQ_API_HOST });
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
  });
  unwatchFile(e.DETQ_API_TOKENS_FILE);
  process.off('SIGHUP', reload);
  await app.close();
  await metrics?.close();
  // A Redis that is down would hold a graceful quit forever: give it a few seconds, then drop it.
  await Promise.race([queues.close(), new Promise((r) => setTimeout(r, 3000).unref())]);
  queues.redis.disconnect();
  s3.destroy();
}
