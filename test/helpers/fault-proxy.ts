import { createConnection, createServer, type Server, type Socket } from 'node:net';

/**
 * - pass: bytes flow both ways.
 * - refuse: nothing listens on the port (clients get ECONNREFUSED); open connections are reset.
 * - blackhole: connections are accepted and never answered; open connections go silent too.
 * - hold: connections are accepted and what either side sends is kept back, then forwarded on the switch
 *   to pass (a stalled server: every request waits, none fails).
 */
export type ProxyMode = 'pass' | 'refuse' | 'blackhole' | 'hold';

export interface FaultProxy {
  /** http://127.0.0.1:<port>, to use as S3_ENDPOINT. */
  endpoint: string;
  port: number;
  mode(): ProxyMode;
  set(mode: ProxyMode): Promise<void>;
  /**
   * Switches to `mode` the `nth` time a client sends bytes matching `pattern` (e.g. an HTTP request
   * line), before forwarding them; resolves when that happened.
   */
  when(pattern: RegExp, mode: ProxyMode, nth?: number): Promise<void>;
  /** Client connections accepted so far. */
  connections(): number;
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  upstream?: Socket;
  /** What each side sent while the proxy held. */
  held: { toServer: Buffer[]; toClient: Buffer[] };
}

/**
 * A TCP proxy in front of a test server (s3rver) that can pass, refuse or black-hole on command, so
 * fault tests exercise the real client stack (SDK retries, socket timeouts) against real outages.
 */
export async function startFaultProxy(target: { host: string; port: number }): Promise<FaultProxy> {
  let mode: ProxyMode = 'pass';
  let accepted = 0;
  const pairs = new Set<Pair>();
  const triggers: { pattern: RegExp; mode: ProxyMode; left: number; fire: () => void }[] = [];
  let server: Server | undefined;
  let port = 0;

  const drop = (p: Pair) => {
    p.client.destroy();
    p.upstream?.destroy();
    pairs.delete(p);
  };

  const onConnection = (client: Socket) => {
    accepted++;
    const pair: Pair = { client, held: { toServer: [], toClient: [] } };
    pairs.add(pair);
    client.on('error', () => drop(pair));
    client.on('close', () => drop(pair));
    if (mode === 'blackhole') return; // accepted, never answered
    const upstream = createConnection(target);
    pair.upstream = upstream;
    upstream.on('error', () => drop(pair));
    upstream.on('close', () => drop(pair));
    client.on('data', (data: Buffer) => {
      const text = data.toString('latin1');
      for (const t of [...triggers]) {
        if (!t.pattern.test(text) || --t.left > 0) continue;
        triggers.splice(triggers.indexOf(t), 1);
        void apply(t.mode).then(t.fire);
      }
      if (mode === 'hold') pair.held.toServer.push(data);
      if (mode === 'pass' && pairs.has(pair)) upstream.write(data);
    });
    upstream.on('data', (data: Buffer) => {
      if (mode === 'hold') pair.held.toClient.push(data);
      if (mode === 'pass' && pairs.has(pair)) client.write(data);
    });
  };

  const listen = async (onPort: number) => {
    server = createServer(onConnection);
    await new Promise<void>((resolve, reject) => {
      server!.once('error', reject);
      server!.listen(onPort, '127.0.0.1', () => resolve());
    });
    port = (server.address() as { port: number }).port;
  };

  const apply = async (next: ProxyMode) => {
    if (next === mode) return;
    const prev = mode;
    mode = next;
    if (next === 'refuse') {
      // Reset what is open and stop listening: new connects are refused by the kernel.
      for (const p of [...pairs]) {
        p.client.resetAndDestroy();
        drop(p);
      }
      const s = server;
      server = undefined;
      await new Promise<void>((r) => s!.close(() => r()));
    } else if (prev === 'refuse') {
      await listen(port);
    }
    // Held bytes reach their side on the switch to pass; any other mode drops them, as it drops traffic.
    for (const p of pairs) {
      const { toServer, toClient } = p.held;
      p.held = { toServer: [], toClient: [] };
      if (next !== 'pass') continue;
      for (const data of toServer) p.upstream?.write(data);
      for (const data of toClient) p.client.write(data);
    }
  };

  await listen(0);
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    mode: () => mode,
    set: apply,
    when: (pattern, next, nth = 1) => new Promise<void>((fire) => triggers.push({ pattern, mode: next, left: nth, fire })),
    connections: () => accepted,
    async close() {
      for (const p of [...pairs]) drop(p);
      const s = server;
      server = undefined;
      if (s) await new Promise<void>((r) => s.close(() => r()));
    },
  };
}
