import { createServer, type Server, type ServerResponse } from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { DetqWorker } from './create-worker';

/**
 * A worker's own HTTP endpoints for its orchestrator (DETQ_WORKER_PORT): `/healthz` while the process
 * runs, `/readyz` once the model is loaded and Redis is reachable (503 while starting, e.g. during an
 * engine build, and once draining), `/metrics` for Prometheus with the worker's device as a label.
 */
export class WorkerHealthServer {
  private worker: DetqWorker | undefined;
  private draining = false;
  private readonly registry = new Registry();

  private constructor(private readonly server: Server) {}

  static async listen(port: number, options: { host?: string; device?: number } = {}): Promise<WorkerHealthServer> {
    const health = new WorkerHealthServer(createServer((req, res) => void health.handle(req.url ?? '/', res)));
    health.registry.setDefaultLabels({ device: options.device === undefined ? 'none' : `gpu${options.device}` });
    collectDefaultMetrics({ register: health.registry });
    health.defineMetrics();
    await new Promise<void>((resolve, reject) => {
      health.server.once('error', reject);
      health.server.listen(port, options.host ?? '0.0.0.0', resolve);
    });
    return health;
  }

  get port(): number {
    return (this.server.address() as { port: number }).port;
  }

  /** The worker is up: its model is loaded and it takes chunks. */
  ready(worker: DetqWorker): void {
    this.worker = worker;
  }

  /** SIGTERM: the orchestrator should send no one here any more (workers pull, so this is informative). */
  drain(): void {
    this.draining = true;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private defineMetrics(): void {
    const stats = async () => (this.worker ? this.worker.pool.stats() : { batches: 0, frames: 0, fill: 0 });
    // Counters follow the pool's running totals: each scrape adds what happened since the last.
    const seen = { frames: 0, batches: 0 };
    const registers = [this.registry];
    new Counter({
      name: 'detq_worker_frames_total',
      help: 'Frames this worker inferred.',
      registers,
      async collect() {
        const { frames } = await stats();
        this.inc(Math.max(0, frames - seen.frames));
        seen.frames = frames;
      },
    });
    new Counter({
      name: 'detq_worker_batches_total',
      help: 'Engine batches this worker ran.',
      registers,
      async collect() {
        const { batches } = await stats();
        this.inc(Math.max(0, batches - seen.batches));
        seen.batches = batches;
      },
    });
    new Gauge({
      name: 'detq_worker_batch_fill',
      help: 'Mean batch fill (0..1) since the worker started.',
      registers,
      async collect() {
        this.set((await stats()).fill);
      },
    });
    const health = this;
    new Gauge({
      name: 'detq_worker_ready',
      help: '1 when the worker takes chunks (model loaded, Redis reachable, not draining).',
      registers,
      collect() {
        this.set(health.state() === 'ready' ? 1 : 0);
      },
    });
  }

  private state(): 'starting' | 'draining' | 'redis unreachable' | 'ready' {
    if (!this.worker) return 'starting';
    if (this.draining) return 'draining';
    return this.worker.queues.redis.status === 'ready' ? 'ready' : 'redis unreachable';
  }

  private async handle(url: string, res: ServerResponse): Promise<void> {
    const path = url.split('?')[0];
    if (path === '/healthz') return void res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    if (path === '/readyz') {
      const state = this.state();
      return void res.writeHead(state === 'ready' ? 200 : 503, { 'content-type': 'text/plain' }).end(`${state}\n`);
    }
    if (path === '/metrics') {
      try {
        const body = await this.registry.metrics();
        return void res.writeHead(200, { 'content-type': this.registry.contentType }).end(body);
      } catch (err) {
        return void res.writeHead(500, { 'content-type': 'text/plain' }).end(`${(err as Error).message}\n`);
      }
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  }
}
