import type { JobParams, JobSpec, ResolvedCaps } from '@detq/core';
import type { ModelRef } from './engine-pool';

/** Data of a set job. `step` lets one BullMQ job plan, wait for its chunks, then finalise. */
export interface SetJobData {
  spec: JobSpec;
  step?: 'plan' | 'finalise';
  /** Set on jobs a job scheduler created: each run writes to its own folder. */
  scheduleId?: string;
  /**
   * The token name that made the job. The worker checks the spec against that token's scopes and caps
   * as they are when it plans (a schedule runs long after it was made); CLI jobs have none.
   */
  principal?: string;
  /** Caps of a job without a principal (CLI); a principal's come from the PrincipalStore. */
  caps?: ResolvedCaps;
}

export interface ChunkImage {
  /** Record key: relative to the input prefix, or the URI itself for lists. */
  key: string;
  uri: string;
  etag?: string;
  /** Bytes, when the listing said: an object above the cap is refused without being downloaded. */
  size?: number;
  /** Set at planning when the image may not be read (FORBIDDEN): it becomes its error record. */
  refused?: { code: 'FORBIDDEN'; message: string };
}

/** An image an incremental run found already labelled: where its record is (object URI and line). */
export interface SkippedImage extends ChunkImage {
  result: string;
  line: number;
}

/**
 * One page of a persisted plan: `chunkSize` listed images, recorded before their chunk job is added. Page N
 * is chunk N; `skipped` holds images an incremental run does not label again; `cancelled` pages were
 * listed after a cancel (no chunk job, their images are CANCELLED).
 */
export interface PlanPage {
  images: ChunkImage[];
  skipped?: SkippedImage[];
  cancelled?: true;
}

export interface ChunkJobData {
  setId: string;
  index: number;
  /** The deterministic object this chunk's records go to: a retry overwrites it. */
  resultUri: string;
  images: ChunkImage[];
  params: JobParams;
  model: ModelRef;
  /** Present for incremental jobs: labelled images are recorded under this index fingerprint. */
  indexFingerprint?: string;
  /** Whose backlog this chunk counts in (fair scheduling across tenants). */
  principal?: string;
  /** Largest object a chunk reads (FILE_TOO_LARGE above it). */
  maxObjectBytes?: number;
}

/**
 * Why a cancelled job's chunks stop (their BullMQ failed reason) and the message of its CANCELLED records:
 * the finaliser tells a cancelled chunk from a failed one by it.
 */
export const CANCELLED_REASON = 'job cancelled';

/** A chunk job's return value (kept by BullMQ for the finaliser's provenance). */
export interface ChunkResult {
  images: number;
  failed: number;
  detections: number;
  engine: { kind: string; runtimeVersion: string; device: string; precision: string };
}

export function chunkJobId(setId: string, index: number): string {
  // Scheduler-made set ids contain ':', which BullMQ forbids in custom ids.
  return `${setId.replaceAll(':', '_')}-c${String(index).padStart(5, '0')}`;
}

/**
 * The object a chunk's records go to, relative to the job's output prefix: namespaced by job, so two jobs
 * (or an incremental re-run) writing to one prefix never overwrite each other's results.
 */
export function chunkResultKey(setId: string, index: number): string {
  return `${jobWorkKey(setId)}chunks/${String(index).padStart(5, '0')}.jsonl`;
}

/** The folder of a job's own objects under its output prefix. */
export function jobWorkKey(setId: string): string {
  return `_detq/${setId.replaceAll(':', '_')}/`;
}
