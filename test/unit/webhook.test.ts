import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendWebhook, signWebhook } from '@detq/queue';

/** Webhook delivery against a receiver on loopback: address check by name, redirects, bounded retries. */
describe('webhook delivery', () => {
  let server: Server;
  let port: number;
  const hits: { path: string; signature: string; timestamp: string; body: string }[] = [];
  const delivery = (path: string) => ({ url: `http://localhost:${port}${path}`, body: { id: 'j1' }, idempotencyKey: 'j1:completed', secret: 'whsec_0123456789abcdef' });

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        hits.push({ path: req.url!, signature: String(req.headers['detq-signature']), timestamp: String(req.headers['detq-timestamp']), body });
        if (req.url === '/redirect') res.writeHead(302, { location: '/ok' }).end();
        else if (req.url === '/down') res.writeHead(503).end();
        else res.end('ok');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  });
  afterAll(() => void server.close());

  it('refuses a host name that resolves to loopback unless private addresses are allowed, checked at connect time', async () => {
    await expect(sendWebhook(delivery('/ok'), { hosts: ['localhost'], allowPrivate: false }, { attempts: 1 })).rejects.toThrow(/private or link-local/);
    expect(hits).toHaveLength(0);
    await sendWebhook(delivery('/ok'), { hosts: ['localhost'], allowPrivate: true });
    const [hit] = hits;
    expect(hit!.signature).toBe(signWebhook('whsec_0123456789abcdef', Number(hit!.timestamp), hit!.body));
  });

  it('does not follow redirects and retries 5xx a bounded number of times', async () => {
    hits.length = 0;
    const policy = { hosts: ['localhost'], allowPrivate: true };
    await expect(sendWebhook(delivery('/redirect'), policy, { attempts: 3, backoffMs: 10 })).rejects.toThrow(/302.*redirects are not followed/);
    expect(hits.map((h) => h.path)).toEqual(['/redirect']);
    await expect(sendWebhook(delivery('/down'), policy, { attempts: 3, backoffMs: 10 })).rejects.toThrow(/503/);
    expect(hits.map((h) => h.path)).toEqual(['/redirect', '/down', '/down', '/down']);
  });
});
