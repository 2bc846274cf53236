import { Job, type Queue } from 'bullmq';
import { buildRunSummary, DetqError, type ImageErrorCode, type ImageRecord, type JobSpec, type JobStatus, type ModelInfo, type RunSummary } from '@detq/core';
import { OutputWriter, OUTPUT_FILES } from '@detq/formats';
import { describeInput, errorRecord, inputFromJob } from '@detq/pipeline';
import { joinUri, type ObjectStore } from '@detq/storage';
import { CANCELLED_REASON, chunkJobId, chunkResultKey, jobWorkKey, type ChunkJobData, type ChunkResult, type PlanPage } from './job-data';
import type { JobState, JobStore } from './job-store';

export interface FinaliserDeps {
  store: ObjectStore;
  jobs: JobStore;
  chunks: Queue<ChunkJobData>;
}

type ManifestEntry =
  | { key: string; uri: string; result: string; line: number; skipped?: true }
  | { key: string; uri: string; error: { code: string; message: string } };

/** The distributed summary is the one run summary of @detq/core. */
export type Summary = RunSummary;

/** A job cancelled before planning never loaded its model. */
const UNKNOWN_MODEL: ModelInfo = { name: 'unknown', sha256: '', engine: 'onnxruntime-cpu', imgsz: [0, 0] };

/** Plan pages read per Redis round trip. */
const PAGE_BATCH = 64;

export interface FinaliseOptions {
  /** Engines that ran the chunks (from BullMQ's children values when the set job finalises). */
  engines?: ChunkResult['engine'][];
}

/**
 * Runs once every chunk of a set has ended, from the persisted plan and the chunk objects alone (no
 * engine, no BullMQ parent needed, so `detq finalise <id>` can run it again): merges the pages' records,
 * in plan order, into the job's formats and writes manifest.json (every planned image exactly once, with
 * its result location or its error) and summary.json. Memory does not grow with the set: records and the
 * manifest stream through staging files. Chunks that failed for good give CHUNK_FAILED records; images an
 * incremental run skipped are copied from the records that labelled them, so the outputs hold every image.
 */
export class Finaliser {
  constructor(private readonly deps: FinaliserDeps) {}

  async finalise(id: string, options: FinaliseOptions = {}): Promise<Summary> {
    const { store, jobs } = this.deps;
    const state = await jobs.get(id);
    if (!state) throw new Error(`no job ${id} (it may have expired)`);
    if (!state.planned) throw new Error(`job ${id} is still being planned`);
    const work = joinUri(state.output, jobWorkKey(id));
    if (state.finalisedAt && state.status !== 'failed') {
      // Already finalised (by another attempt or `detq finalise`): its summary is the answer.
      return JSON.parse((await store.get(joinUri(work, 'summary.json'))).toString('utf8')) as Summary;
    }
    const { spec } = state;
    const params = paramsOf(spec);
    const model = state.model ?? UNKNOWN_MODEL;

    if (state.total === 0 && state.skipped > 0 && state.status !== 'cancelled' && (await store.exists(joinUri(state.output, 'manifest.json')))) {
      const message = `nothing new to label: all ${state.skipped} images were labelled before; the outputs under ${state.output} are unchanged`;
      const summary = this.summary(state, 'completed', { labelled: 0, skipped: state.skipped, failed: 0, cancelled: 0, detections: 0, chunks: 0, failedChunks: 0 }, {}, [], options, message);
      await store.put(joinUri(work, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`, 'application/json');
      await jobs.finish(id, 'completed', { finishedAt: Date.parse(summary.timing.finishedAt), finalisedAt: Date.now(), message });
      return summary;
    }

    // Final outputs are written by the job that holds the output prefix; a cancelled job whose prefix was
    // taken meanwhile writes its manifest and summary under its own folder instead.
    const owns = await jobs.claimOutput(id, state.output);
    const target = owns ? state.output : work;
    const inputPrefix = spec.input.uri !== undefined ? (spec.input.uri.endsWith('/') ? spec.input.uri : `${spec.input.uri}/`) : '';
    const writer = await OutputWriter.open({
      outUri: target,
      formats: spec.output.formats,
      names: state.names ?? [],
      store,
      imageUri: (key) => inputPrefix + key,
    });
    try {
      const manifest = await writer.appender('manifest.json');
      await manifest.write(`{"id":${JSON.stringify(id)},"input":${JSON.stringify(spec.input)},"output":${JSON.stringify(state.output)},"images":[`);
      const counts = { labelled: 0, skipped: 0, failed: 0, cancelled: 0, detections: 0, chunks: 0, failedChunks: 0 };
      const errorsByCode: Record<string, number> = {};
      const finalCounts: [number, number, number][] = [];
      let firstModel: ModelInfo | undefined;
      let entries = 0;
      const previous = new PreviousResults(store);
      const add = async (record: ImageRecord, entry: ManifestEntry) => {
        await writer.add(record);
        await manifest.write(`${entries++ ? ',' : ''}\n${JSON.stringify(entry)}`);
        counts.detections += record.detections.length;
      };
      for (let from = 0; from < state.chunks; from += PAGE_BATCH) {
        const pages = await jobs.pages(id, from, Math.min(state.chunks, from + PAGE_BATCH));
        for (const [i, page] of pages.entries()) {
          const index = from + i;
          const own = await this.ownRecords(id, state, index, page, model, params);
          if (own.failedChunk) counts.failedChunks++;
          if (page.images.length && !page.cancelled) counts.chunks++;
          let done = 0;
          let failed = 0;
          for (const [line, record] of own.records.entries()) {
            // The planned URI: a list or manifest entry's key is not its object's URI.
            const uri = page.images[line]?.uri ?? inputPrefix + record.key;
            if (record.error) {
              errorsByCode[record.error.code] = (errorsByCode[record.error.code] ?? 0) + 1;
              if (record.error.code === 'CANCELLED') counts.cancelled++;
              else (counts.failed++, done++, failed++);
              await add(record, { key: record.key, uri, error: record.error });
            } else {
              counts.labelled++;
              done++;
              firstModel ??= record.model;
              await add(record, { key: record.key, uri, result: relativeTo(state.output, own.resultUri), line: line + 1 });
            }
          }
          finalCounts.push([index, done, failed]);
          for (const s of page.skipped ?? []) {
            counts.skipped++;
            const record = await previous.record(s.result, s.line);
            if (record) await add({ ...record, key: s.key }, { key: s.key, uri: s.uri, result: relativeTo(state.output, s.result), line: s.line, skipped: true });
            else {
              // The earlier result is gone (deleted by hand): the image is reported, never silently dropped.
              const err = new DetqError('READ_FAILED', `already labelled, but its record (${s.result} line ${s.line}) is gone: run again without incremental`);
              const rec = errorRecord(s.key, err, model, params);
              errorsByCode.READ_FAILED = (errorsByCode.READ_FAILED ?? 0) + 1;
              counts.skipped--;
              counts.failed++;
              await add(rec, { key: s.key, uri: s.uri, error: rec.error! });
            }
          }
        }
      }
      await manifest.write(`\n],"total":${entries}}\n`);
      await manifest.end();
      const status: JobStatus = state.status === 'cancelled' ? 'cancelled' : counts.failed > 0 ? 'completed_with_errors' : 'completed';
      const message = owns ? undefined : `the output prefix ${state.output} was taken by another job after this one was cancelled: outputs are under ${target}`;
      const summary = this.summary(state, status, counts, errorsByCode, spec.output.formats.map((f) => joinUri(target, OUTPUT_FILES[f])).concat(joinUri(target, 'manifest.json')), options, message, firstModel);
      const summaryJson = `${JSON.stringify(summary, null, 2)}\n`;
      await writer.writeFile('summary.json', summaryJson);
      await writer.finish();
      // The job's own copy: what a later `detq finalise` or an attempt after a crash answers with.
      if (target !== work) await store.put(joinUri(work, 'summary.json'), summaryJson, 'application/json');
      await jobs.setFinalCounts(id, finalCounts);
      await jobs.finish(id, status, { finishedAt: Date.parse(summary.timing.finishedAt), finalisedAt: Date.now(), ...(message && { message }) });
      return summary;
    } catch (err) {
      await writer.abort();
      throw err;
    }
  }

  /** A page's own records: its chunk's result object, or error records for every image when there is none. */
  private async ownRecords(
    id: string,
    state: JobState,
    index: number,
    page: PlanPage,
    model: ModelInfo,
    params: ImageRecord['params'],
  ): Promise<{ records: ImageRecord[]; resultUri: string; failedChunk: boolean }> {
    const resultUri = joinUri(state.output, chunkResultKey(id, index));
    if (page.images.length === 0) return { records: [], resultUri, failedChunk: false };
    const body = page.cancelled ? undefined : await getIfExists(this.deps.store, resultUri);
    if (body) return { records: parseChunk(body), resultUri, failedChunk: false };
    let reason = page.cancelled ? CANCELLED_REASON : undefined;
    reason ??= (await Job.fromId<ChunkJobData>(this.deps.chunks, chunkJobId(id, index)))?.failedReason || undefined;
    reason ??= state.status === 'cancelled' ? CANCELLED_REASON : 'the chunk ended without writing its result';
    const code: ImageErrorCode = reason === CANCELLED_REASON ? 'CANCELLED' : 'CHUNK_FAILED';
    const records = page.images.map(({ key }) => errorRecord(key, new DetqError(code, reason), model, params));
    return { records, resultUri, failedChunk: code === 'CHUNK_FAILED' };
  }

  private summary(
    state: JobState,
    status: JobStatus,
    counts: { labelled: number; skipped: number; failed: number; cancelled: number; detections: number; chunks: number; failedChunks: number },
    errorsByCode: Record<string, number>,
    files: string[],
    options: FinaliseOptions,
    message?: string,
    model?: ModelInfo,
  ): Summary {
    const { imgsz: _imgsz, ...params } = state.spec.params;
    return buildRunSummary({
      id: state.id,
      cancelled: status === 'cancelled',
      input: describeInput(inputFromJob(state.spec.input)),
      output: state.output,
      counts: { total: counts.labelled + counts.skipped + counts.failed + counts.cancelled, ...counts },
      errorsByCode,
      ...(message && { message }),
      startedAt: state.startedAt ?? state.createdAt,
      finishedAt: Date.now(),
      model: model ?? state.model ?? UNKNOWN_MODEL,
      engines: options.engines ?? [],
      params,
      files,
    });
  }
}

/** Reads records of earlier results by (object, line), keeping only the last object read. */
class PreviousResults {
  private uri?: string;
  private lines: string[] = [];

  constructor(private readonly store: ObjectStore) {}

  async record(uri: string, line: number): Promise<ImageRecord | undefined> {
    if (uri !== this.uri) {
      const body = await getIfExists(this.store, uri);
      this.uri = uri;
      this.lines = body ? body.toString('utf8').split('\n') : [];
    }
    const text = this.lines[line - 1];
    return text ? (JSON.parse(text) as ImageRecord) : undefined;
  }
}

async function getIfExists(store: ObjectStore, uri: string): Promise<Buffer | undefined> {
  try {
    return await store.get(uri);
  } catch (err) {
    const e = err as { name?: string; code?: string; $metadata?: { httpStatusCode?: number } };
    if (e.$metadata?.httpStatusCode === 404 || e.name === 'NoSuchKey' || e.code === 'ENOENT') return undefined;
    throw err;
  }
}

function paramsOf(spec: JobSpec): ImageRecord['params'] {
  const { imgsz: _imgsz, ...params } = spec.params;
  return params;
}

/** A location relative to the output prefix when it is under it, else the absolute URI. */
function relativeTo(output: string, uri: string): string {
  return uri.startsWith(output) ? uri.slice(output.length) : uri;
}

function parseChunk(body: Buffer): ImageRecord[] {
  return body
    .toString('utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as ImageRecord);
}

