import { UnrecoverableError, type Job, type Queue } from 'bullmq';
import { inScope, type JobSpec } from '@detq/core';
import { inputFromJob, listImages } from '@detq/pipeline';
import { joinUri, type ObjectStore } from '@detq/storage';
import { chunkJobId, chunkResultKey, type ChunkImage, type ChunkJobData, type SetJobData } from './job-data';
import type { IncrementalIndex } from './incremental-index';
import type { FairShare } from './fair-share';
import { ManifestLineError, manifestUris } from './manifest';
import type { JobStore } from './job-store';
import type { ModelRef } from './engine-pool';

export interface PlanResult {
  /** Images listed, before incremental skipping. */
  listed: number;
  /** Images put into chunks. */
  total: number;
  chunks: number;
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
 * Lists a job's input page by page and adds one chunk job per `chunkSize` images as children of the set
 * job. Only one chunk's worth of images is held at a time, so a 100k-object prefix plans in bounded
 * memory. Chunk job ids and result keys are deterministic: a planner re-run after a crash re-adds the
 * same chunks (BullMQ ignores existing ids) instead of duplicating them.
 */
export class Planner {
  constructor(private readonly deps: PlannerDeps) {}

  async plan(job: Job<SetJobData>, output: string, model: ModelRef, access: PlanAccess, indexFingerprint?: string): Promise<PlanResult> {
    const { spec } = job.data;
    const id = job.id!;
    const result: PlanResult = { listed: 0, total: 0, chunks: 0, cancelled: false };
    let batch: ChunkImage[] = [];
    const flush = async () => {
      const images = indexFingerprint ? await this.deps.index.unseen(indexFingerprint, batch) : batch;
      batch = [];
      if (images.length === 0) return;
      const index = result.chunks++;
      result.total += images.length;
      const data: ChunkJobData = {
        setId: id,
        index,
        resultUri: joinUri(output, chunkResultKey(index)),
        images,
        params: spec.params,
        model,
        ...(indexFingerprint && { indexFingerprint }),
        ...(access.principal && { principal: access.principal }),
        ...(access.maxObjectBytes && { maxObjectBytes: access.maxObjectBytes }),
      };
      await this.deps.chunks.add('chunk', data, {
        jobId: chunkJobId(id, index),
        parent: { id: job.id!, queue: job.queueQualifiedName },
        // A chunk that fails for good is reported by the finaliser; it must not fail the whole set.
        ignoreDependencyOnFailure: true,
        attempts: this.deps.attempts,
        backoff: { type: 'exponential', delay: 1000 },
        priority: await this.deps.fair.chunkPriority(access.principal, spec.priority),
        removeOnComplete: { age: 7 * 86400 },
        removeOnFail: { age: 7 * 86400 },
      });
      // Every 16 chunks (4096 images by default): the running total for status views, and a cancel check.
      if (result.chunks % 16 === 0 && (await this.deps.jobs.recordPlanned(id, result.total, result.chunks)) === 'cancelled')
        result.cancelled = true;
    };
    for await (const image of this.images(spec)) {
      result.listed++;
      if (access.maxImages !== undefined && result.listed > access.maxImages)
        throw new UnrecoverableError(`the input has more than ${access.maxImages} images, the cap of this token`);
      batch.push(forbidden(image, access));
      if (batch.length >= spec.chunkSize) {
        await flush();
        if (result.cancelled) return result;
      }
    }
    await flush();
    return result;
  }

  /** The input's images in a stable order (so re-planning yields the same chunks): the one lister. */
  private images(spec: JobSpec): AsyncGenerator<ChunkImage> {
    const { include, exclude } = spec.input;
    return listImages(inputFromJob(spec.input), { store: this.deps.store, ...(include && { include }), ...(exclude && { exclude }) });
  }
}
