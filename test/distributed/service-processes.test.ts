import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createToken } from '@detq/api';
import { REPO_ROOT } from '@detq/core';
import { waitFor } from './helpers';

const DETQ = join(REPO_ROOT, 'apps/cli/bin/detq.js');

function detq(args: string[], env: NodeJS.ProcessEnv): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [DETQ, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  return { child, output: () => out, exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))) };
}

async function freePort(): Promise<number> {
  const srv = createNetServer().listen(0, '127.0.0.1');
  await new Promise((r) => srv.once('listening', r));
  const { port } = srv.address() as { port: number };
  await new Promise((r) => srv.close(r));
  return port;
}

/** A private redis-server on its own port and directory, which the test stops and starts again. */
function startRedis(port: number, dir: string): ChildProcess {
  return spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
}

async function stopRedis(redis: ChildProcess): Promise<void> {
  if (redis.exitCode !== null) return;
  const exited = new Promise((r) => redis.once('exit', r));
  redis.kill('SIGTERM');
  await exited;
}

describe('processes: env validation, Redis outages and token reloads of `detq api`', () => {
  it('a bad env value exits 2 naming the variable and what it must be (api and worker)', async () => {
    const { DETQ_API_TOKENS_FILE: _unset, ...rest } = process.env;
    // Started together: each pays the CLI's start-up once, in parallel.
    const worker = detq(['worker'], { ...process.env, DETQ_WORKER_CONCURRENCY: 'abc' });
    const api = detq(['api'], { ...process.env, DETQ_API_TOKENS_FILE: '/nonexistent', DETQ_API_PORT: 'http', DETQ_WEBHOOK_ALLOW_PRIVATE: 'maybe' });
    const noTokens = detq(['api'], rest);
    expect(await Promise.all([worker.exited, api.exited, noTokens.exited])).toEqual([2, 2, 2]);
    expect(worker.output()).toMatch(/DETQ_WORKER_CONCURRENCY: .*number.*\(got "abc"\)/);
    expect(api.output()).toMatch(/DETQ_API_PORT: .*\(got "http"\)/);
    expect(api.output()).toMatch(/DETQ_WEBHOOK_ALLOW_PRIVATE: must be 1\/0, true\/false or yes\/no/);
    expect(noTokens.output()).toMatch(/DETQ_API_TOKENS_FILE: must be set/);
  }, 60_000);

  describe('with a private Redis', () => {
    const dir = mkdtempSync(join(tmpdir(), 'detq-redis-'));
    const tokensFile = join(dir, 'tokens.json');
    const alice = createToken('alice', ['s3://in/*', 's3://out/alice/*']);
    const bob = createToken('bob', ['s3://in/*', 's3://out/bob/*']);
    let redisPort: number;
    let redis: ChildProcess;
    let api: ReturnType<typeof detq>;
    let base: string;
    const get = (path: string, token = alice.token) =>
      fetch(`${base}${path}`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(1000) });

    beforeAll(async () => {
      redisPort = await freePort();
      redis = startRedis(redisPort, dir);
      writeFileSync(tokensFile, JSON.stringify([alice.entry, bob.entry]));
      const port = await freePort();
      base = `http://127.0.0.1:${port}`;
      api = detq(['api'], {
        ...process.env,
        REDIS_URL: `redis://127.0.0.1:${redisPort}`,
        // The test's Redis is a throwaway one: no persistence needed (worker-faults.test.ts proves the refusal).
        DETQ_ALLOW_VOLATILE_REDIS: '1',
        DETQ_QUEUE_PREFIX: '{svc}',
        DETQ_API_TOKENS_FILE: tokensFile,
        DETQ_API_PORT: String(port),
        DETQ_API_HOST: '127.0.0.1',
      });
      await waitFor('the API to answer', async () => ((await get('/v1/jobs').catch(() => undefined))?.status === 200 ? true : undefined), 60_000);
    }, 90_000);

    afterAll(async () => {
      api?.child.kill('SIGTERM');
      await api?.exited;
      if (redis) await stopRedis(redis);
    });

    it('503 {"error":"queue unavailable"} with Retry-After within 1 s on every route while Redis is down; /readyz says why; recovers by itself', async () => {
      await stopRedis(redis);
      try {
        await outage();
      } finally {
        redis = startRedis(redisPort, dir);
      }
      await waitFor('the API to recover', async () => ((await get('/v1/jobs').catch(() => undefined))?.status === 200 ? true : undefined), 30_000);
      const enqueued = await fetch(`${base}/v1/jobs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${alice.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ input: { uri: 's3://in/a/' }, output: { uri: 's3://out/alice/a/' } }),
      });
      expect(enqueued.status).toBe(202);
    }, 60_000);

    async function outage() {
      // Each request aborts after 1 s: an answer at all proves it came within 1 s.
      for (const [method, path] of [['GET', '/v1/jobs'], ['GET', '/v1/jobs/abc'], ['POST', '/v1/jobs'], ['POST', '/v1/jobs/abc/cancel'], ['GET', '/v1/schedules'], ['DELETE', '/v1/schedules/x']] as const) {
        const res = await fetch(`${base}${path}`, {
          method,
          headers: { authorization: `Bearer ${alice.token}`, 'content-type': 'application/json' },
          ...(method === 'POST' && { body: JSON.stringify({ input: { uri: 's3://in/a/' }, output: { uri: 's3://out/alice/a/' } }) }),
          signal: AbortSignal.timeout(1000),
        });
        expect([res.status, await res.json()], `${method} ${path}`).toEqual([503, { error: 'queue unavailable' }]);
        expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
      }
      const ready = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(1000) });
      expect(ready.status).toBe(503);
      expect(((await ready.json()) as { redis: string }).redis).toMatch(/unreachable/);
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
    }

    it('`detq token revoke` takes effect in the running API without a restart', async () => {
      expect((await get('/v1/jobs', bob.token)).status).toBe(200);
      const revoke = detq(['token', 'revoke', '--name', 'bob', '--file', tokensFile], process.env);
      expect(await revoke.exited).toBe(0);
      await waitFor('bob to be refused', async () => ((await get('/v1/jobs', bob.token)).status === 401 ? true : undefined), 15_000);
      expect((await get('/v1/jobs')).status).toBe(200);
    }, 30_000);
  });
});
