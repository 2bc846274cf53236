import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, createToken, TokenStore } from '@detq/api';
import { REPO_ROOT, runSummarySchema, type ImageRecord } from '@detq/core';
import { DetqQueues, JobClient } from '@detq/queue';
import { S3Store, s3ConfigFromEnv } from '@detq/storage';
import { createWorker, workerSettingsFromEnv, type DetqWorker } from '@detq/worker';
import type { FastifyInstance } from 'fastify';
import { chromiumPath } from '../helpers/chromium';
import { badImages, cocoImageNames } from '../helpers/fixtures';
import { startS3Server, type TestS3Server } from '../helpers/s3-server';
import { dropPrefix, testQueueConfig, uploadSet, waitFor } from '../distributed/helpers';

// What the page.evaluate callbacks below use of the page: the repository's Node typecheck has no DOM
// types (the dashboard's own code is checked against them, in apps/dashboard/tsconfig.json).
interface PageElement {
  tagName: string;
  textContent: string | null;
  complete?: boolean;
  naturalWidth?: number;
  getAttribute(name: string): string | null;
  closest(selector: string): PageElement | null;
  getBoundingClientRect(): { right: number };
}
declare const window: {
  location: { hash: string };
  sessionStorage: { getItem(key: string): string | null };
  innerWidth: number;
  scrollTo(x: number, y: number): void;
  document: { activeElement: PageElement | null; querySelectorAll(selector: string): Iterable<PageElement> };
};

/** Screenshots (git-ignored) and the load times the run measured. */
const SHOTS = join(REPO_ROOT, 'test-output/dashboard');
const VIEWPORTS = { desktop: { width: 1280, height: 800 }, phone: { width: 390, height: 844 } } as const;

// Four kinds of bad file next to 12 coco128 images: each must show in the errors filter with its code.
const BAD = Object.fromEntries(
  Object.entries(badImages())
    .filter(([name]) => ['empty.jpg', 'truncated.jpg', 'notes.jpg', 'scan.pdf'].includes(name))
    .map(([name, f]) => [`bad/${name}`, f]),
);
const IMAGES = cocoImageNames(12);

describe('dashboard in headless Chromium: sign in, enqueue, live progress, gallery, errors, cancel, schedules, workers', () => {
  let s3: TestS3Server;
  let store: S3Store;
  let worker: DetqWorker;
  let queues: DetqQueues;
  let jobs: JobClient;
  let app: FastifyInstance;
  let base: string;
  let browser: Browser;
  let desktop: BrowserContext;
  let page: Page;
  let jobId = '';
  const config = testQueueConfig();
  const alice = createToken('alice', ['s3://in/*', 's3://out/*']);
  const bob = createToken('bob', ['s3://in/*', 's3://out/*']);
  const consoleErrors: string[] = [];
  /** Network errors the browser logs for answers a step expects (a refused token, a hidden job). */
  let expectedStatus: number[] = [];
  const loadTimes: Record<string, number> = {};

  const watchConsole = (p: Page) => {
    p.on('console', (m) => {
      if (m.type() !== 'error') return;
      const status = /status of (\d+)/.exec(m.text())?.[1];
      if (!status || !expectedStatus.includes(Number(status))) consoleErrors.push(`${m.text()} (${m.location().url}:${m.location().lineNumber})`);
    });
    p.on('pageerror', (e) => consoleErrors.push(e.message));
  };

  const newPage = async (context: BrowserContext) => {
    const p = await context.newPage();
    watchConsole(p);
    return p;
  };

  const signIn = async (p: Page, token: string) => {
    await p.goto(`${base}/ui/`);
    await p.getByLabel('API token').fill(token);
    await p.keyboard.press('Enter');
  };

  /** Loads a page, waits for `ready`, records the load time (navigation to content shown). */
  const open = async (p: Page, hash: string, ready: string, name: string) => {
    // From a blank page, so each measure is a full load (a hash-only change would not reload).
    await p.goto('about:blank');
    const t0 = Date.now();
    await p.goto(`${base}/ui/${hash}`);
    await p.locator(ready).first().waitFor({ timeout: 60_000 });
    loadTimes[name] ??= Date.now() - t0;
  };

  const shot = async (p: Page, name: string) => {
    const size = p.viewportSize()!;
    await p.evaluate(() => window.scrollTo(0, 0));
    await p.screenshot({ path: join(SHOTS, `${name}-${size.width}x${size.height}.png`), fullPage: false });
  };

  const detections = async (output: string): Promise<Map<string, ImageRecord>> => {
    const lines = (await store.get(`${output}detections.jsonl`)).toString().trim().split('\n');
    return new Map(lines.map((l) => JSON.parse(l) as ImageRecord).map((r) => [r.key, r]));
  };

  const api = (path: string, token: string, init: RequestInit = {}) =>
    fetch(`${base}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...init.headers } });

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    s3 = await startS3Server();
    Object.assign(process.env, s3.env);
    store = new S3Store(s3ConfigFromEnv(s3.env));
    await uploadSet(store, 's3://in/dash/', IMAGES, BAD);
    worker = await createWorker({ ...workerSettingsFromEnv({ DETQ_ALLOW_VOLATILE_REDIS: '1' }), queue: config, threads: 1, concurrency: 1, progressIntervalMs: 200, statsIntervalMs: 500 }, { log: () => {} });
    queues = new DetqQueues(config);
    jobs = new JobClient(queues);
    app = createServer({ queues, tokens: new TokenStore([alice.entry, bob.entry]), s3Ready: async () => {}, store, eventsIntervalMs: 200 });
    base = await app.listen({ port: 0, host: '127.0.0.1' });
    browser = await chromium.launch({ executablePath: chromiumPath(), args: ['--no-sandbox'] });
    desktop = await browser.newContext({ viewport: VIEWPORTS.desktop });
    page = await newPage(desktop);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await app?.close();
    await worker?.close();
    await queues?.close();
    await dropPrefix(config.prefix);
    store?.destroy();
    await s3?.stop();
    if (Object.keys(loadTimes).length) {
      writeFileSync(join(SHOTS, 'load-times.json'), `${JSON.stringify(loadTimes, null, 2)}\n`);
      console.log(`dashboard load times on loopback (ms, navigation to content shown): ${JSON.stringify(loadTimes)}`);
    }
  });

  it('refuses a wrong token, then signs in with the right one (keyboard only)', async () => {
    await open(page, '', 'form[aria-label="Sign in"]', 'signin');
    await shot(page, 'signin');
    expectedStatus = [401];
    await page.getByLabel('API token').fill('detq_not-a-token');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.getByRole('alert').textContent()).toBe('The API refused this token.');
    expectedStatus = [];
    await page.getByLabel('API token').fill(alice.token);
    await page.keyboard.press('Enter');
    await page.getByRole('navigation', { name: 'Main' }).waitFor();
    expect(await page.evaluate(() => window.sessionStorage.getItem('detq.token'))).toBe(alice.token);
  });

  it('enqueue form: zod field errors next to the fields, then a job followed live to completed_with_errors', async () => {
    await open(page, '#/enqueue', 'form[aria-label="New job"]', 'enqueue');
    await page.getByRole('button', { name: 'Enqueue' }).click();
    await page.locator('[data-field="output.uri"] .field-error').waitFor();
    expect(await page.locator('[data-field="input.uri"] .field-error').textContent()).toBe('give exactly one of uri, manifest or images');
    await page.getByLabel('Confidence').fill('1.5');
    await page.getByLabel('Output prefix').fill('https://example.com/out');
    expect(await page.locator('[data-field="params.conf"] .field-error').textContent()).toMatch(/<=\s*1/);
    expect(await page.locator('[data-field="output.uri"] .field-error').textContent()).toContain('only s3:// is accepted');
    await shot(page, 'enqueue-errors');

    await page.getByLabel('Input prefix').fill('s3://in/dash/');
    await page.getByLabel('Output prefix').fill('s3://out/dash/');
    await page.getByLabel('Confidence').fill('0.25');
    await page.getByLabel('Chunk size').fill('4');
    expect(await page.locator('.field-error').count()).toBe(0);
    // Chunks wait until the page shows the planned job: the rest of the run must reach it through SSE.
    await queues.chunks.pause();
    try {
      await page.getByRole('button', { name: 'Enqueue' }).click();
      await page.waitForURL(/#\/jobs\/[^/]+$/);
      jobId = page.url().split('#/jobs/')[1]!;
      await page.locator('[data-status="running"]').waitFor({ timeout: 60_000 });
      expect(await page.locator('[data-count="total"]').textContent()).toBe(String(IMAGES.length + Object.keys(BAD).length));
      expect(await page.locator('[data-count="done"]').textContent()).toBe('0');
    } finally {
      await queues.chunks.resume();
    }
    await page.locator('[data-status="completed_with_errors"]').waitFor({ timeout: 120_000 });
    expect(await page.locator('[data-count="done"]').textContent()).toBe('16');
    expect(await page.locator('[data-count="failed"]').textContent()).toBe('4');
    // The ended job's figures come from its summary.json.
    const summary = runSummarySchema.parse(JSON.parse((await store.get('s3://out/dash/summary.json')).toString()));
    await expect.poll(() => page.locator('[data-stat="time"]').getAttribute('data-seconds')).toBe(String(summary.timing.seconds));
    expect(await page.locator('[data-stat="time"]').textContent()).toMatch(/^\d+ (s|min \d+ s)$/);
    expect(await page.locator('[data-stat="detections"]').textContent()).toBe(String(summary.counts.detections));
    const codes = () => page.locator('table.errors tr[data-code]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-code')).sort());
    await expect.poll(codes).toEqual([...new Set(Object.values(BAD).map((b) => b.code))].sort());
    await page.locator('.chart canvas').waitFor();
    // The chart's data: the job's 4 chunks of 4 images, each at its finish time.
    const throughput = (await (await api(`/v1/jobs/${jobId}/throughput`, alice.token)).json()) as { points: { at: number; images: number }[] };
    expect(throughput.points.map((p) => p.images)).toEqual([4, 4, 4, 4]);
    await shot(page, 'job');
  });

  it('gallery: one SVG box per detection, where the job put it; the viewer opens and closes by keyboard', async () => {
    const records = await detections('s3://out/dash/');
    await open(page, `#/jobs/${jobId}`, '[data-status="completed_with_errors"]', 'job');
    await open(page, `#/jobs/${jobId}/gallery?min=0`, '.tile[data-detections]', 'gallery');
    await expect.poll(() => page.locator('.tile[data-detections]').count()).toBe(IMAGES.length);
    await page.waitForFunction(() => [...window.document.querySelectorAll('.tile img')].filter((i) => i.complete && i.naturalWidth! > 0).length === 12, undefined, { timeout: 60_000 });
    const drawn = await page.locator('.tile[data-detections]').evaluateAll((tiles) =>
      tiles.map((t) => ({
        key: t.getAttribute('data-key')!,
        boxes: [...t.querySelectorAll('rect.box')].map((r) => ({
          cls: r.getAttribute('data-class'),
          box: ['x', 'y', 'width', 'height'].map((a) => Number(r.getAttribute(a))),
        })),
      })),
    );
    let total = 0;
    for (const tile of drawn) {
      const record = records.get(tile.key)!;
      expect(tile.boxes.map((b) => b.cls), tile.key).toEqual(record.detections.map((d) => d.class_name));
      tile.boxes.forEach((b, i) => {
        const [x1, y1, x2, y2] = record.detections[i]!.box;
        [x1, y1, x2 - x1, y2 - y1].forEach((v, j) => expect(b.box[j]).toBeCloseTo(v, 3));
      });
      total += tile.boxes.length;
    }
    expect(total).toBeGreaterThan(0);
    await shot(page, 'gallery');

    // The class filter keeps the images with that class, and only its boxes.
    const person = [...records.values()].filter((r) => r.detections.some((d) => d.class_name === 'person'));
    await page.getByLabel('Class').selectOption('person');
    await expect.poll(() => page.locator('.tile[data-detections]').count()).toBe(person.length);
    expect(await page.locator('rect.box').evaluateAll((rects) => [...new Set(rects.map((r) => r.getAttribute('data-class')))])).toEqual(['person']);
    expect(await page.locator('rect.box').count()).toBe(person.reduce((n, r) => n + r.detections.filter((d) => d.class_name === 'person').length, 0));
    await page.getByLabel('Class').selectOption('');
    await expect.poll(() => page.locator('.tile[data-detections]').count()).toBe(IMAGES.length);

    const first = page.locator('.tile[data-detections] button.frame').first();
    await first.focus();
    await page.keyboard.press('Enter');
    const viewer = page.locator('dialog.viewer');
    await viewer.locator('img').waitFor();
    expect(await viewer.locator('rect.box').count()).toBe(drawn[0]!.boxes.length);
    await shot(page, 'viewer');
    await page.keyboard.press('Escape');
    await viewer.waitFor({ state: 'detached' });
  });

  it('errors filter shows exactly the bad files, each with its code', async () => {
    await page.getByLabel('Errors only').check();
    await expect.poll(() => page.locator('.tile[data-detections]').count()).toBe(0);
    expect(await page.locator('.tile-error').count()).toBe(Object.keys(BAD).length);
    const shown = await page.locator('.tile-error').evaluateAll((tiles) => Object.fromEntries(tiles.map((t) => [t.getAttribute('data-key'), t.getAttribute('data-code')])));
    expect(shown).toEqual(Object.fromEntries(Object.entries(BAD).map(([key, b]) => [key, b.code])));
    await shot(page, 'gallery-errors');
  });

  it('cancel from the jobs list asks first; Keep keeps the job, Cancel job cancels it', async () => {
    await queues.chunks.pause();
    let id: string;
    try {
      const res = await api('/v1/jobs', alice.token, { method: 'POST', body: JSON.stringify({ input: { uri: 's3://in/dash/' }, output: { uri: 's3://out/cancel/' }, chunkSize: 4 }) });
      id = ((await res.json()) as { id: string }).id;
      await waitFor('planning', async () => ((await jobs.view(id))?.status === 'running' ? true : undefined));
      await open(page, '#/jobs', `tr[data-job="${id}"]`, 'jobs');
      const row = page.locator(`tr[data-job="${id}"]`);
      await shot(page, 'jobs');
      await row.getByRole('button', { name: 'Cancel' }).click();
      await page.getByRole('dialog').getByRole('button', { name: 'Keep' }).click();
      expect((await jobs.view(id))?.status).toBe('running');
      await row.getByRole('button', { name: 'Cancel' }).click();
      await page.getByRole('dialog').getByRole('button', { name: 'Cancel job' }).click();
      await row.locator('[data-status="cancelled"]').waitFor({ timeout: 30_000 });
      expect((await jobs.view(id))?.status).toBe('cancelled');
    } finally {
      await queues.chunks.resume();
    }
    // Keyboard: Tab from the top reaches the job's link; Enter opens its page.
    await page.locator('body').focus();
    for (let i = 0; i < 40 && (await page.evaluate(() => window.document.activeElement?.textContent)) !== jobId; i++) await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await page.waitForURL(new RegExp(`#/jobs/${jobId}$`));
  });

  it('schedules: cron preview, field error for a bad pattern, add, list, remove', async () => {
    await open(page, '#/schedules', 'form[aria-label="Add a schedule"]', 'schedules');
    await page.getByLabel('Id', { exact: true }).fill('nightly-dash');
    await page.getByLabel('Cron').fill('0 2 * * *');
    await expect.poll(() => page.locator('.preview li').count(), { timeout: 10_000 }).toBe(5);
    const first = await page.locator('.preview li').first().textContent();
    const next2am = new Date();
    next2am.setUTCHours(2, 0, 0, 0);
    if (next2am.getTime() <= Date.now()) next2am.setUTCDate(next2am.getUTCDate() + 1);
    expect(first).toBe(next2am.toLocaleString('en-US'));
    expectedStatus = [400];
    await page.getByLabel('Cron').fill('61 * * * * * *');
    await page.locator('[data-field="cron"] .field-error').waitFor();
    expectedStatus = [];
    await page.getByLabel('Cron').fill('0 2 * * *');
    await page.getByLabel('Input prefix').fill('s3://in/dash/');
    await page.getByLabel('Output prefix').fill('s3://out/nightly/');
    await page.getByRole('button', { name: 'Add schedule' }).click();
    const row = page.locator('tr[data-schedule="nightly-dash"]');
    await row.waitFor();
    await shot(page, 'schedules');
    await row.getByRole('button', { name: 'Remove' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Remove' }).click();
    await row.waitFor({ state: 'detached' });
    expect(await (await api('/v1/schedules', alice.token)).json()).toEqual({ schedules: [] });
  });

  it('workers page shows the live worker with its engine, device and batch fill', async () => {
    await open(page, '#/workers', 'tr[data-worker]', 'workers');
    const cells = await page.locator('tr[data-worker] td').allTextContents();
    expect(cells[1]).toBe('onnxruntime-cpu');
    expect(cells[2]).toBe('cpu');
    await shot(page, 'workers');
  });

  // Needs ownership in the API (issue 8): until it is merged, every token sees every job in scope.
  it("a second token sees none of the first token's jobs: not listed, its page and routes answer 404", async () => {
    const context = await browser.newContext({ viewport: VIEWPORTS.desktop });
    try {
      const other = await newPage(context);
      await signIn(other, bob.token);
      await other.locator('h1', { hasText: 'Jobs' }).waitFor();
      await other.waitForLoadState('networkidle');
      expect(await other.locator(`tr[data-job="${jobId}"]`).count()).toBe(0);
      expectedStatus = [404];
      await other.evaluate((h) => (window.location.hash = h), `#/jobs/${jobId}`);
      await other.getByRole('alert').filter({ hasText: 'no such job' }).waitFor();
      for (const path of [`/v1/jobs/${jobId}`, `/v1/jobs/${jobId}/detail`, `/v1/jobs/${jobId}/records`, `/v1/jobs/${jobId}/image?key=${IMAGES[0]}`]) {
        expect((await api(path, bob.token)).status, path).toBe(404);
      }
    } finally {
      expectedStatus = [];
      await context.close();
    }
  });

  it('every page at 390x844 (phone) and 1280x800; no console errors anywhere', async () => {
    const phone = await browser.newContext({ viewport: VIEWPORTS.phone });
    try {
      const p = await newPage(phone);
      await p.goto(`${base}/ui/`);
      await shot(p, 'signin');
      await signIn(p, alice.token);
      await p.getByRole('navigation', { name: 'Main' }).waitFor();
      for (const [hash, ready, name] of [
        ['#/jobs', `tr[data-job="${jobId}"]`, 'jobs'],
        [`#/jobs/${jobId}`, '[data-status="completed_with_errors"]', 'job'],
        [`#/jobs/${jobId}/gallery?min=0`, '.tile img', 'gallery'],
        [`#/jobs/${jobId}/gallery?errors=1`, '.tile-error', 'gallery-errors'],
        ['#/enqueue', 'form[aria-label="New job"]', 'enqueue'],
        ['#/schedules', 'form[aria-label="Add a schedule"]', 'schedules'],
        ['#/workers', 'tr[data-worker]', 'workers'],
      ] as const) {
        await p.evaluate((h) => (window.location.hash = h), hash);
        await p.locator(ready).first().waitFor({ timeout: 30_000 });
        if (name === 'gallery') await p.waitForFunction(() => [...window.document.querySelectorAll('.tile img')].every((i) => i.complete));
        // Nothing sticks out of the phone's screen (wide tables scroll inside their own box).
        const outside = await p.evaluate(() =>
          [...window.document.querySelectorAll('body *')]
            .filter((e) => !e.closest('.table-wrap, dialog, svg *') && e.getBoundingClientRect().right > window.innerWidth + 0.5)
            .map((e) => `${e.tagName.toLowerCase()}.${e.getAttribute("class") ?? ""}`),
        );
        expect(outside, name).toEqual([]);
        await shot(p, name);
      }
    } finally {
      await phone.close();
    }
    expect(consoleErrors).toEqual([]);
  });
});
