import { ListBucketsCommand } from '@aws-sdk/client-s3';
import { faultSettingsFromEnv } from '@detq/core';
import { checkRedisDurability, DetqQueues, queueConfigFromEnv, webhookHostsFromEnv } from '@detq/queue';
import { S3Store, s3ConfigFromEnv, s3StoreOptionsFromEnv } from '@detq/storage';
import { createServer } from './create-server';
import { TokenStore } from './token-store';

/** `detq api`: config from env, serves until SIGTERM/SIGINT, then closes cleanly. */
export async function runApi(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const tokensFile = env.DETQ_API_TOKENS_FILE;
  if (!tokensFile) throw new Error('DETQ_API_TOKENS_FILE is not set (create entries with `detq token create`)');
  const tokens = TokenStore.fromFile(tokensFile);
  const queues = new DetqQueues(queueConfigFromEnv(env));
  try {
    for (const warning of await checkRedisDurability(queues.redis, faultSettingsFromEnv(env).allowVolatileRedis)) console.error(`detq api: ${warning}`);
  } catch (err) {
    await queues.close();
    throw err;
  }
  const s3 = new S3Store(s3ConfigFromEnv(env), s3StoreOptionsFromEnv(env));
  const app = createServer({
    queues,
    tokens,
    s3Ready: async () => void (await s3.client.send(new ListBucketsCommand({}))),
    bodyLimit: Number(env.DETQ_API_BODY_LIMIT ?? 1024 * 1024),
    webhookHosts: webhookHostsFromEnv(env),
    logger: true,
  });
  const port = Number(env.DETQ_API_PORT ?? 8080);
  await app.listen({ port, host: env.DETQ_API_HOST ?? '0.0.0.0' });
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
  });
  await app.close();
  await queues.close();
  s3.destroy();
}
