import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { DetqQueues } from '@detq/queue';
import { dropPrefix, startDetq, testQueueConfig, waitFor, type DetqProcess } from './helpers';

/** pids of the workers the supervisor started for one GPU, in order. */
const workerPids = (out: string, gpu: number) => [...out.matchAll(new RegExp(`gpu${gpu} worker started \\(pid (\\d+)\\)`, 'g'))].map((m) => Number(m[1]));
const readyCount = (out: string, gpu: number) => out.split('\n').filter((l) => l.startsWith(`[gpu${gpu}] detq worker:`) && l.includes('concurrency')).length;

function procArgs(pid: number): { argv: string[]; env: Record<string, string> } {
  const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  const env = Object.fromEntries(
    readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
  );
  return { argv, env };
}

/** A port p with p and p + 1 free (the supervisor gives worker i the port DETQ_WORKER_PORT + i). */
async function twoFreePorts(): Promise<number> {
  const listen = (port: number) =>
    new Promise<ReturnType<typeof createServer> | undefined>((resolve) => {
      const srv = createServer().once('error', () => resolve(undefined)).listen(port, '127.0.0.1', () => resolve(srv));
    });
  for (;;) {
    const a = await listen(0);
    const port = (a!.address() as { port: number }).port;
    const b = await listen(port + 1);
    await Promise.all([a, b].map((s) => s && new Promise((r) => s.close(r))));
    if (b) return port;
  }
}

describe('detq worker --gpus: one worker process per GPU under a supervisor (CPU workers standing in)', () => {
  const config = testQueueConfig();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    REDIS_URL: config.redisUrl,
    // The test's Redis is a throwaway one: no persistence needed (worker-faults.test.ts proves the refusal).
    DETQ_ALLOW_VOLATILE_REDIS: '1',
    DETQ_QUEUE_PREFIX: config.prefix,
    DETQ_THREADS: '1',
    DETQ_STATS_MS: '500',
  };
  const procs: DetqProcess[] = [];
  const queues = new DetqQueues(config);

  afterAll(async () => {
    for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await queues.close();
    await dropPrefix(config.prefix);
  });

  it('--gpus 0,1 runs two workers with their --device/DETQ_DEVICE; a SIGKILLed one is restarted; SIGTERM drains both and exits 0', async () => {
    const port = await twoFreePorts();
    const sup = startDetq(['worker', '--engine', 'onnxruntime-cpu', '--gpus', '0,1'], { ...env, DETQ_WORKER_PORT: String(port) });
    procs.push(sup);
    await waitFor('both workers to load their model', async () => (readyCount(sup.output(), 0) && readyCount(sup.output(), 1) ? true : undefined), 120_000);

    const [first0] = workerPids(sup.output(), 0);
    const [first1] = workerPids(sup.output(), 1);
    for (const [gpu, pid] of [[0, first0!], [1, first1!]] as const) {
      const { argv, env: childEnv } = procArgs(pid);
      expect(argv.slice(-3)).toEqual(['worker', '--device', String(gpu)]);
      expect(childEnv.DETQ_DEVICE).toBe(String(gpu));
      expect(childEnv.DETQ_ENGINE).toBe('onnxruntime-cpu');
      expect(childEnv.DETQ_GPUS).toBeUndefined();
    }
    // Metrics carry the device: each worker reports under an id ending in its GPU.
    const ids = await waitFor('both workers to report stats', async () => {
      const w = Object.keys(await queues.metrics.workers());
      return w.length === 2 ? w.sort() : undefined;
    });
    expect(ids.map((id) => id.replace(/^.*\//, ''))).toEqual(['gpu0', 'gpu1']);
    expect(ids.map((id) => Number(/:(\d+)\//.exec(id)![1])).sort()).toEqual([first0, first1].sort());
    // Each worker serves its own health and metrics, labelled with its device.
    for (const gpu of [0, 1]) {
      const base = `http://127.0.0.1:${port + gpu}`;
      const ready = await fetch(`${base}/readyz`);
      expect([ready.status, await ready.text()]).toEqual([200, 'ready\n']);
      const metrics = await (await fetch(`${base}/metrics`)).text();
      expect(metrics).toContain(`detq_worker_ready{device="gpu${gpu}"} 1`);
      expect(metrics).toMatch(new RegExp(`^detq_worker_frames_total\\{device="gpu${gpu}"\\} 0$`, 'm'));
    }

    process.kill(first1!, 'SIGKILL');
    await waitFor('gpu1 worker to be restarted and ready', async () => (readyCount(sup.output(), 1) === 2 ? true : undefined), 120_000);
    expect(sup.output()).toContain('gpu1 worker exited (signal SIGKILL); restarting in 1.0 s');
    const restarted = workerPids(sup.output(), 1);
    expect(restarted).toHaveLength(2);
    expect(restarted[1]).not.toBe(first1);
    expect(procArgs(restarted[1]!).env.DETQ_DEVICE).toBe('1');
    // The other worker was left alone.
    expect(workerPids(sup.output(), 0)).toEqual([first0]);

    sup.child.kill('SIGTERM');
    const ended = await sup.exited;
    expect(ended.code, sup.output()).toBe(0);
    const out = sup.output();
    expect(out).toContain('[gpu0] detq worker: drained');
    expect(out).toContain('[gpu1] detq worker: drained');
    expect(out).toContain('gpu0 worker exited (code 0)');
    expect(out).toContain('gpu1 worker exited (code 0)');
    expect(out).toContain('detq supervisor: all workers drained');
  }, 300_000);

  it('--gpus all on a machine without GPUs fails at once, saying why', async () => {
    const p = startDetq(['worker', '--gpus', 'all'], env);
    procs.push(p);
    expect((await p.exited).code).toBe(6);
    expect(p.output()).toMatch(/^detq: --gpus all: no GPU found \(.*nvidia-smi: .*\)\n$/);
  });
});
