import type { Job, Queue } from 'bullmq';
import { UnrecoverableError } from 'bullmq';
import picomatch from 'picomatch';
import { s3UriSchema, type JobSpec } from '@detq/core';
import { isImageName } from '@detq/pipeline';
import { joinUri, type ObjectStore } from '@detq/storage';
import { chunkJobId, chunkResultKey, type ChunkImage, type ChunkJobData, type PlanPage, type SetJobData } from './job-data';
import type { IncrementalIndex } from './incremental-index';
import type { JobStore } from './job-store';
import type { ModelRef } from './engine-pool';

export interface PlanResult {
  /** Input entries listed, before incremental skipping. */
  listed: number;
  /** Images put into chunks. */
  total: number;
  /** Plan pages (= chunk indices) recorded. */
  chunks: number;
  /** The job was cancelled while planning: the rest of the input was recorded as cancelled pages. */
  cancelled: boolean;
}

export interface PlannerDeps {
  store: ObjectStore;
  jobs: JobStore;
  chunks: Queue<ChunkJobData>;
  index: IncrementalIndex;
  /** Chunk job attempts (transient failures are retried with exponential backoff). */
  attempts: number;
}

/**
 * Lists a job's input page by page and turns every `chunkSize` entries into a plan page, persisted in the
 * job state together with the listing's cursor BEFORE its chunk job is added as a child of the set job. A
 * retried planning step (crash, lost Redis write, transient error) resumes after the last recorded page:
 * a page's contents are never derived twice, so objects added or removed between two attempts cannot
 * shift images between chunks, and the finaliser enumerates exactly the pages the plan recorded. Only one
 * page of keys is held at a time, so a 100k-object prefix plans in bounded memory.
 */
export class Planner {
  constructor(private readonly deps: PlannerDeps) {}

  async plan(job: Job<SetJobData>, output: string, model: ModelRef, indexFingerprint?: string): Promise<PlanResult> {
    const { jobs } = this.deps;
    const { spec } = job.data;
    const id = job.id!;
    const state = await jobs.get(id);
    if (!state) throw new UnrecoverableError(`job ${id} has no state`);
    let index = state.chunks;
    let listed = state.listed;
    let cancelled = state.status === 'cancelled';
    // The last recorded page's chunk may not have been added before the previous attempt stopped; adding
    // it again is a no-op when it was (same id, same data from the plan).
    if (state.added < state.chunks && !cancelled) {
      const [last] = await jobs.pages(id, state.chunks - 1, state.chunks);
      await this.addChunk(job, state.chunks - 1, last!, output, model, indexFingerprint);
    }
    let batch: ChunkImage[] = [];
    const flush = async () => {
      if (batch.length === 0) return;
      const cursor = batch.at(-1)!.uri;
      let page: PlanPage;
      if (cancelled) page = { images: batch, cancelled: true };
      else if (indexFingerprint) {
        const { fresh, done } = await this.deps.index.partition(indexFingerprint, batch);
        page = { images: fresh, ...(done.length && { skipped: done }) };
      } else page = { images: batch };
      batch = [];
      const status = await jobs.recordPage(id, index, page, cursor, listed);
      if (status === 'cancelled') cancelled = true;
      else await this.addChunk(job, index, page, output, model, indexFingerprint);
      index++;
    };
    for await (const image of this.images(spec, { after: state.cursor, listed })) {
      listed++;
      batch.push(image);
      if (batch.length >= spec.chunkSize) await flush();
    }
    await flush();
    const after = (await jobs.get(id))!;
    return { listed, total: after.total, chunks: index, cancelled };
  }

  private async addChunk(job: Job<SetJobData>, index: number, page: PlanPage, output: string, model: ModelRef, indexFingerprint?: string): Promise<void> {
    if (page.images.length === 0 || page.cancelled) return;
    const { spec } = job.data;
    const id = job.id!;
    const data: ChunkJobData = {
      setId: id,
      index,
      resultUri: joinUri(output, chunkResultKey(id, index)),
      images: page.images,
      params: spec.params,
      model,
      ...(indexFingerprint && { indexFingerprint }),
    };
    await this.deps.chunks.add('chunk', data, {
      jobId: chunkJobId(id, index),
      parent: { id, queue: job.queueQualifiedName },
      // A chunk that fails for good is reported by the finaliser; it must not fail the whole set.
      ignoreDependencyOnFailure: true,
      attempts: this.deps.attempts,
      backoff: { type: 'exponential', delay: 1000 },
      ...(spec.priority && { priority: spec.priority }),
      // The result lives in S3 and the plan in the job state: a finished chunk job keeps nothing needed
      // (the last 100 stay an hour for inspection).
      removeOnComplete: { age: 3600, count: 100 },
      removeOnFail: { age: this.deps.jobs.ttlSeconds },
    });
  }

  /**
   * The input's entries in a stable order, resumed after `after` (the last planned entry's URI). The one
   * call site of input listing: a prefix resumes with the store's startAfter, a list or manifest by count.
   */
  private async *images(spec: JobSpec, resume: { after?: string; listed: number }): AsyncGenerator<ChunkImage> {
    const { input } = spec;
    if (input.uri !== undefined) {
      const prefix = input.uri.endsWith('/') ? input.uri : `${input.uri}/`;
      // Without include patterns, the same extension filter as `detq label`; refused formats stay listed
      // so they get an error record instead of vanishing.
      const include = input.include?.length ? picomatch(input.include, { dot: true }) : (key: string) => isImageName(key);
      const exclude = input.exclude?.length ? picomatch(input.exclude, { dot: true }) : () => false;
      for await (const e of this.deps.store.list(prefix, { ...(resume.after && { startAfter: resume.after }) })) {
        const key = e.uri.slice(prefix.length);
        if (include(key) && !exclude(key)) yield { key, uri: e.uri, ...(e.etag && { etag: e.etag }) };
      }
    } else if (input.images !== undefined) {
      for (const uri of input.images.slice(resume.listed)) yield { key: uri, uri };
    } else if (input.manifest !== undefined) {
      let n = 0;
      for await (const image of this.manifest(input.manifest)) if (n++ >= resume.listed) yield image;
    }
  }

  /** A .jsonl manifest has one `"s3://…"` or `{"uri": "s3://…"}` a line; a .csv has the URI first. */
  private async *manifest(uri: string): AsyncGenerator<ChunkImage> {
    const text = (await this.deps.store.get(uri)).toString('utf8');
    const jsonl = /\.jsonl$/i.test(uri);
    let n = 0;
    for (const raw of text.split(/\r?\n/)) {
      n++;
      const line = raw.trim();
      if (!line) continue;
      let value: unknown;
      try {
        value = jsonl ? JSON.parse(line) : line.split(',')[0]!.trim().replace(/^"|"$/g, '');
      } catch {
        throw new UnrecoverableError(`manifest ${uri} line ${n}: not JSON`);
      }
      const image = typeof value === 'object' && value !== null ? (value as { uri?: unknown }).uri : value;
      if (!jsonl && n === 1 && image === 'uri') continue;
      const parsed = s3UriSchema.safeParse(image);
      if (!parsed.success) throw new UnrecoverableError(`manifest ${uri} line ${n}: ${parsed.error.issues[0]?.message}`);
      yield { key: parsed.data, uri: parsed.data };
    }
  }
}
