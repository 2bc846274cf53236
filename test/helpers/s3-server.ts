import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// s3rver ships no type declarations; the few members used here are typed below.
// @ts-expect-error -- untyped CommonJS module
import S3rver from 's3rver';

interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
  on(event: 'event', listener: (e: { Records: { eventName: string; s3: { object: { key: string } } }[] }) => void): void;
}

/** s3rver's fixed credentials: every request must be signed with them. */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

export interface TestS3Server {
  /** e.g. http://127.0.0.1:41234 */
  endpoint: string;
  /**
   * The env an S3Store or a child process needs to reach this server. The AWS SDK reads credentials from
   * process.env, so an in-process user does `Object.assign(process.env, server.env)`.
   */
  env: Record<string, string>;
  /** PUT Object requests served so far (benchmarks count S3 writes with it). */
  puts(): number;
  /** Keys of the objects written by a completed multipart upload so far. */
  multipartUploads(): string[];
  stop(): Promise<void>;
}

function s3Env(endpoint: string): Record<string, string> {
  return {
    S3_ENDPOINT: endpoint,
    S3_FORCE_PATH_STYLE: 'true',
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
  };
}

/**
 * startS3Server() in a child process started with --openssl-legacy-provider, for listings of more than
 * 1000 keys (see the note below) from a test process that cannot turn the provider on itself. Buckets
 * `in` and `out`; puts() and multipartUploads() are not counted across the process boundary (always 0 / []).
 */
export async function startS3ServerProcess(): Promise<TestS3Server> {
  const child = spawn(process.execPath, ['--openssl-legacy-provider', '--import', 'tsx', join(import.meta.dirname, 's3-server-main.ts')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const endpoint = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line) resolve((JSON.parse(line) as { endpoint: string }).endpoint);
    });
    child.once('exit', (code) => reject(new Error(`the S3 server process exited (${code})`)));
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    endpoint,
    env: s3Env(endpoint),
    puts: () => 0,
    multipartUploads: () => [],
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/**
 * Note: s3rver encrypts ListObjectsV2 continuation tokens with DES, which OpenSSL 3 only has in its legacy
 * provider: a listing of more than 1000 keys needs the process started with --openssl-legacy-provider.
 *
 * Starts a real S3-protocol server (s3rver) in this process on a random loopback port, backed by a fresh
 * temp dir, with the given buckets created. stop() closes it and deletes the dir.
 */
export async function startS3Server(buckets: readonly string[] = ['in', 'out']): Promise<TestS3Server> {
  const directory = await mkdtemp(join(tmpdir(), 'detq-s3-'));
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory,
    configureBuckets: buckets.map((name) => ({ name })),
  }) as S3rverInstance;
  let puts = 0;
  const multipart: string[] = [];
  server.on('event', (e) => {
    if (e.Records[0]?.eventName === 'ObjectCreated:Put') puts++;
    // s3rver reports a completed multipart upload as a Post.
    if (e.Records[0]?.eventName === 'ObjectCreated:Post') multipart.push(e.Records[0].s3.object.key);
  });
  const { port } = await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    env: s3Env(endpoint),
    puts: () => puts,
    multipartUploads: () => [...multipart],
    async stop() {
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}
