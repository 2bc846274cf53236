import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, waitFor, type DetqProcess as Proc } from './helpers';

export { freePort, startNode, startDetq as start, type DetqProcess as Proc } from './helpers';

export function kill(p: Proc | undefined): void {
  if (p && p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
}

/** Resolves once a worker has loaded its model and is taking jobs. */
export function workerReady(p: Proc): Promise<true> {
  return waitFor('a worker to load its model', async () => (/detq worker: .* concurrency/.test(p.output()) ? true : undefined), 90_000);
}

export interface PrivateRedis {
  url: string;
  /** Shuts the server down (SIGTERM: it writes its AOF and exits). */
  stop(): Promise<void>;
  /** Starts it again on the same port and data dir. */
  restart(): Promise<void>;
  /** Stops it for good and deletes its dir. */
  destroy(): Promise<void>;
}

/** A redis-server of the test's own, on a free port and its own temp dir, with the given extra config. */
export async function startRedis(config: string[]): Promise<PrivateRedis> {
  const dir = await mkdtemp(join(tmpdir(), 'detq-redis-'));
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  let proc: ChildProcess | undefined;
  const up = async () => {
    proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, ...config], { stdio: 'ignore' });
    const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => 100 });
    probe.on('error', () => undefined); // refused until the server is up
    try {
      await waitFor('redis-server to answer', async () => ((await probe.ping().catch(() => undefined)) === 'PONG' ? true : undefined), 20_000);
    } finally {
      probe.disconnect();
    }
  };
  const down = async () => {
    const p = proc;
    proc = undefined;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await exited;
  };
  await up();
  return {
    url,
    stop: down,
    restart: up,
    async destroy() {
      await down();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
