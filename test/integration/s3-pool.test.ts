import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Store, s3ConfigFromEnv } from '@detq/storage';
import { waitFor } from '../distributed/helpers';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy';
import { startS3Server, type TestS3Server } from '../helpers/s3-server';

// A GPU worker reads thousands of objects a second (apps/worker/README.md, "Feeding a GPU worker from
// S3"): its S3 client must open as many connections as it has reads in flight, up to the pool size, and
// keep them for the next reads. Reads are held at a stalled proxy so all of them are in flight at once.
describe('S3 connection pool', () => {
  const READS = 120;
  let s3: TestS3Server;
  let proxy: FaultProxy;
  let store: S3Store;

  beforeAll(async () => {
    s3 = await startS3Server();
    proxy = await startFaultProxy({ host: '127.0.0.1', port: Number(new URL(s3.endpoint).port) });
    // Written by another client: the one under test starts with no connection open.
    const writer = new S3Store(s3ConfigFromEnv(s3.env));
    await Promise.all(Array.from({ length: READS }, (_, i) => writer.put(`s3://in/pool/${i}.bin`, `object ${i}`)));
    writer.destroy();
    store = new S3Store(s3ConfigFromEnv({ ...s3.env, S3_ENDPOINT: proxy.endpoint }));
  });

  afterAll(async () => {
    store?.destroy();
    await proxy?.close();
    await s3?.stop();
  });

  it(`opens one connection per read in flight (${READS}, above the SDK's default 50) and reuses them`, async () => {
    const readAll = () => Promise.all(Array.from({ length: READS }, (_, i) => store.get(`s3://in/pool/${i}.bin`)));
    const opened = proxy.connections();
    expect(opened).toBe(0);
    await proxy.set('hold');
    const first = readAll();
    await waitFor(`${READS} connections`, async () => (proxy.connections() - opened >= READS ? true : undefined), 20_000);
    await proxy.set('pass');
    expect((await first).map(String)).toEqual(Array.from({ length: READS }, (_, i) => `object ${i}`));
    expect(proxy.connections() - opened).toBe(READS);
    // Kept alive: the next round of reads opens nothing new.
    expect((await readAll()).map(String)).toEqual(Array.from({ length: READS }, (_, i) => `object ${i}`));
    expect(proxy.connections() - opened).toBe(READS);
  });
});
