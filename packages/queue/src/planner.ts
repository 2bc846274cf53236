import { UnrecoverableError, type Job, type Queue } from 'bullmq';
import { inScope, type JobSpec } from '@detq/core';
import { inputFromJob, listImages } from '@detq/pipeline';
import { joinUri, type ObjectStore } from '@detq/storage';
import { chunkJobId, chunkResultKey, type ChunkImage, type ChunkJobData, type PlanPage, type SetJobData } from './job-data';
import type { IncrementalIndex } from './incremental-index';
import type { FairShare } from './fair-share';
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
  fair: FairShare;
}

/** What the job's principal may touch, as the set processor resolved it when planning began. */
export interface PlanAccess {
  principal: string;
  /** Undefined for CLI jobs: no scope applies. */
  scopes?: readonly string[];
  maxImages?: number;
  maxObjectBytes?: number;
}

/** An image outside the token's scopes (a manifest line) is planned as its FORBIDDEN error record. */
function forbidden(image: ChunkImage, access: PlanAccess): ChunkImage {
  if (!access.scopes || inScope(image.uri, access.scopes)) return image;
  return { ...image, refused: { code: 'FORBIDDEN', message: `${image.uri} is outside the scopes of token ${access.principal}` } };
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

  async plan(job: Job<SetJobData>, output: string, model: ModelRef, access: PlanAccess, indexFingerprint?: string): Promise<PlanResult> {
    const { jobs } = this.deps;
    const { spec } = job.data;
    const id = job.id!;
    const state = await jobs.get(id);
    if (!state) throw new UnrecoverableError(`job ${id} has no state`);
    let index = state.chunks;
    let listed = state.listed;
    let cancelled = state.status === 'cancelled';
    // The last recorded page's chunk may not have been added before the previous attempt stopped. Added
    // only if it is missing: one that exists may have ended already, and adding it again would put it back
    // in its tenant's fair-share backlog for good.
    if (state.added < state.chunks && !cancelled && !(await this.deps.chunks.getJob(chunkJobId(id, state.chunks - 1)))) {
      const [last] = await jobs.pages(id, state.chunks - 1, state.chunks);
      await this.addChunk(job, state.chunks - 1, last!, output, model, access, indexFingerprint);
    }
    let batch: ChunkImage[] = [];
    const flush = async () => {
      if (batch.length === 0) return;
      const cursor = batch.at(-1)!.key;
      let page: PlanPage;
      if (cancelled) page = { images: batch, cancelled: true };
      else if (indexFingerprint) {
        const { fresh, done } = await this.deps.index.partition(indexFingerprint, batch);
        page = { images: fresh, ...(done.length && { skipped: done }) };
      } else page = { images: batch };
      batch = [];
      const status = await jobs.recordPage(id, index, page, cursor, listed);
      if (status === 'cancelled') cancelled = true;
      else await this.addChunk(job, index, page, output, model, access, indexFingerprint);
      index++;
    };
    for await (const image of this.images(spec, state.cursor)) {
      listed++;
      if (access.maxImages !== undefined && listed > access.maxImages)
        throw new UnrecoverableError(`the input has more than ${access.maxImages} images, the cap of this token`);
      batch.push(forbidden(image, access));
      if (batch.length >= spec.chunkSize) await flush();
    }
    await flush();
    const after = (await jobs.get(id))!;
    return { listed, total: after.total, chunks: index, cancelled };
  }

  private async addChunk(job: Job<SetJobData>, index: number, page: PlanPage, output: string, model: ModelRef, access: PlanAccess, indexFingerprint?: string): Promise<void> {
    if (page.images.length === 0 || page.cancelled) return;
    const { spec } = job.data;
    const id = job.id!;
    const jobId = chunkJobId(id, index);
    const data: ChunkJobData = {
      setId: id,
      index,
      resultUri: joinUri(output, chunkResultKey(id, index)),
      images: page.images,
      params: spec.params,
      model,
      ...(indexFingerprint && { indexFingerprint }),
      ...(access.principal && { principal: access.principal }),
      ...(access.maxObjectBytes && { maxObjectBytes: access.maxObjectBytes }),
    };
    await this.deps.chunks.add('chunk', data, {
      jobId,
      parent: { id, queue: job.queueQualifiedName },
      // A chunk that fails for good is reported by the finaliser; it must not fail the whole set.
      ignoreDependencyOnFailure: true,
      attempts: this.deps.attempts,
      backoff: { type: 'exponential', delay: 1000 },
      priority: await this.deps.fair.chunkPriority(access.principal, jobId, spec.priority),
      // The result lives in S3 and the plan in the job state: a finished chunk job keeps nothing needed
      // (the last 100 stay an hour for inspection).
      removeOnComplete: { age: 3600, count: 100 },
      removeOnFail: { age: this.deps.jobs.ttlSeconds },
    });
  }

  /**
   * The input's entries in a stable order, resumed after `after` (the key of the last planned entry):
   * the one lister, the one call site of input listing.
   */
  private images(spec: JobSpec, after: string | undefined): AsyncGenerator<ChunkImage> {
    const { include, exclude } = spec.input;
    return listImages(inputFromJob(spec.input), {
      store: this.deps.store,
      ...(include && { include }),
      ...(exclude && { exclude }),
      ...(after !== undefined && { startAfter: after }),
    });
  }
}
