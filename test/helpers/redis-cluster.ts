import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestRedisCluster {
  /** The cluster's masters on loopback, in slot order. */
  ports: number[];
  /** `redis+cluster://` URL with every master as a seed. */
  url: string;
  /** `redis-cli` against one node, e.g. cli(port, 'cluster', 'keyslot', key). */
  cli(port: number, ...args: string[]): string;
  /** The port of the master serving a hash slot. */
  ownerOf(slot: number): number;
  stop(): Promise<void>;
}

const canListen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const srv = createServer()
      .once('error', () => resolve(false))
      .listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });

/** A free port whose cluster bus port (+10000) is free too. */
async function freeClusterPort(taken: Set<number>): Promise<number> {
  for (;;) {
    const port = 20000 + Math.floor(Math.random() * 30000);
    if (!taken.has(port) && (await canListen(port)) && (await canListen(port + 10000))) return port;
  }
}

/**
 * Starts a Redis Cluster of `masters` redis-server processes on loopback (free ports chosen now,
 * each with its own temp dir, AOF on and noeviction as detq requires), joined with
 * `redis-cli --cluster create`. stop() kills them and deletes their dirs.
 */
export async function startRedisCluster(masters = 3): Promise<TestRedisCluster> {
  const taken = new Set<number>();
  const nodes: { port: number; dir: string; proc: ChildProcess }[] = [];
  const cli = (port: number, ...args: string[]) => {
    const r = spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8', timeout: 60_000 });
    if (r.status !== 0) throw new Error(`redis-cli ${args.join(' ')}: ${r.stderr || r.stdout}`);
    return r.stdout.trim();
  };
  const stop = async () => {
    for (const n of nodes) n.proc.kill('SIGKILL');
    await Promise.all(nodes.map((n) => new Promise((r) => (n.proc.exitCode !== null || n.proc.signalCode !== null ? r(undefined) : n.proc.once('exit', r)))));
    await Promise.all(nodes.map((n) => rm(n.dir, { recursive: true, force: true })));
  };
  try {
    for (let i = 0; i < masters; i++) {
      const port = await freeClusterPort(taken);
      taken.add(port);
      const dir = await mkdtemp(join(tmpdir(), 'detq-redis-cluster-'));
      const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf',
        '--appendonly', 'yes', '--save', '', '--maxmemory-policy', 'noeviction'];
      nodes.push({ port, dir, proc: spawn('redis-server', args, { stdio: 'ignore' }) });
    }
    const ports = nodes.map((n) => n.port);
    for (const port of ports) await until(() => tryCli(cli, port, 'ping') === 'PONG', `redis-server on ${port}`);
    cli(ports[0]!, '--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes');
    for (const port of ports) await until(() => /cluster_state:ok/.test(tryCli(cli, port, 'cluster', 'info') ?? ''), `cluster state ok on ${port}`);
    const ownerOf = (slot: number) => {
      // CLUSTER NODES lines: <id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <link> <slot ranges...>
      for (const line of cli(ports[0]!, 'cluster', 'nodes').split('\n')) {
        const fields = line.split(' ');
        const ranges = fields.slice(8).map((r) => r.split('-').map(Number));
        if (ranges.some(([from, to]) => slot >= from! && slot <= (to ?? from!))) return Number(/:(\d+)@/.exec(fields[1]!)![1]);
      }
      throw new Error(`no master serves slot ${slot}`);
    };
    return { ports, url: `redis+cluster://${ports.map((p) => `127.0.0.1:${p}`).join(',')}`, cli, ownerOf, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

function tryCli(cli: TestRedisCluster['cli'], port: number, ...args: string[]): string | undefined {
  try {
    return cli(port, ...args);
  } catch {
    return undefined;
  }
}

async function until(ok: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
