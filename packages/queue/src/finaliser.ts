import { Job, type Queue } from 'bullmq';
import { buildRunSummary, DetqError, type ImageErrorCode, type ImageRecord, type RunSummary } from '@detq/core';
import { OutputWriter, OUTPUT_FILES } from '@detq/formats';
import { describeInput, errorRecord, inputFromJob } from '@detq/pipeline';
import { joinUri, type ObjectStore } from '@detq/storage';
import type { LabelRuntime } from './engine-pool';
import { chunkJobId, chunkResultKey, type ChunkJobData, type ChunkResult, type SetJobData } from './job-data';
import type { JobState, JobStore } from './job-store';

export interface FinaliserDeps {
  store: ObjectStore;
  jobs: JobStore;
  chunks: Queue<ChunkJobData>;
}

type ManifestEntry =
  | { key: string; uri: string; result: string; line: number }
  | { key: string; uri: string; error: { code: string; message: string } };

/** The distributed summary is the one run summary of @detq/core. */
export type Summary = RunSummary;

/**
 * Runs once every chunk of a set has ended: merges the chunk objects, in chunk order, into the job's
 * formats and writes manifest.json (every planned image exactly once, with its result location or its
 * error) and summary.json. Chunks that failed for good give CHUNK_FAILED records for their images.
 */
export class Finaliser {
  constructor(private readonly deps: FinaliserDeps) {}

  async finalise(job: Job<SetJobData>, state: JobState, runtime: LabelRuntime): Promise<Summary> {
    const { store, chunks } = this.deps;
    const { spec } = job.data;
    const id = job.id!;
    const failures = await job.getIgnoredChildrenFailures();
    const failedById = new Map(Object.entries(failures).map(([key, reason]) => [key.slice(key.lastIndexOf(':') + 1), reason]));
    const results = Object.values(await job.getChildrenValues<ChunkResult>());
    const inputPrefix = spec.input.uri !== undefined ? (spec.input.uri.endsWith('/') ? spec.input.uri : `${spec.input.uri}/`) : '';
    const writer = await OutputWriter.open({
      outUri: state.output,
      formats: spec.output.formats,
      names: runtime.names,
      store,
      imageUri: (key) => inputPrefix + key,
    });
    const manifest: ManifestEntry[] = [];
    const errorsByCode: Record<string, number> = {};
    let detections = 0;
    let model: ImageRecord['model'] | undefined;
    const chunkCounts: [number, number, number][] = [];
    for (let index = 0; index < state.chunks; index++) {
      const chunkId = chunkJobId(id, index);
      const resultRel = chunkResultKey(index);
      const reason = failedById.get(chunkId);
      const records =
        reason === undefined
          ? parseChunk(await store.get(joinUri(state.output, resultRel)))
          : await this.failedChunkRecords(chunks, chunkId, reason, runtime);
      records.forEach((r, i) => {
        const uri = inputPrefix + r.key;
        if (r.error) {
          errorsByCode[r.error.code] = (errorsByCode[r.error.code] ?? 0) + 1;
          manifest.push({ key: r.key, uri, error: r.error });
        } else {
          detections += r.detections.length;
          model ??= r.model;
          manifest.push({ key: r.key, uri, result: resultRel, line: i + 1 });
        }
      });
      for (const r of records) await writer.add(r);
      chunkCounts.push([index, records.length, records.filter((r) => r.error).length]);
    }
    const failed = Object.values(errorsByCode).reduce((a, b) => a + b, 0);
    const { imgsz: _imgsz, ...params } = spec.params;
    const summary = buildRunSummary({
      id,
      cancelled: state.status === 'cancelled',
      input: describeInput(inputFromJob(spec.input)),
      output: state.output,
      counts: { total: manifest.length, labelled: manifest.length - failed, failed, detections, chunks: state.chunks, failedChunks: failedById.size },
      errorsByCode,
      startedAt: state.startedAt ?? state.createdAt,
      finishedAt: Date.now(),
      model: model ?? runtime.model,
      engines: results.map((r) => r.engine),
      params,
      files: [...spec.output.formats.map((f) => joinUri(state.output, OUTPUT_FILES[f])), joinUri(state.output, 'manifest.json')],
    });
    await writer.writeFile('manifest.json', JSON.stringify({ id, input: spec.input, output: state.output, total: manifest.length, images: manifest }));
    await writer.writeFile('summary.json', `${JSON.stringify(summary, null, 2)}\n`);
    await writer.finish();
    // Workers send a chunk's last counts with their next periodic write; the job's final counts are these.
    if (chunkCounts.length) await this.deps.jobs.reportChunks(id, chunkCounts);
    return summary;
  }

  private async failedChunkRecords(chunks: Queue<ChunkJobData>, chunkId: string, reason: string, runtime: LabelRuntime): Promise<ImageRecord[]> {
    const chunk = await Job.fromId<ChunkJobData>(chunks, chunkId);
    if (!chunk) throw new Error(`chunk ${chunkId} failed and its job data is gone: cannot name its images`);
    const code: ImageErrorCode = reason === 'job cancelled' ? 'CANCELLED' : 'CHUNK_FAILED';
    const { imgsz: _imgsz, ...params } = chunk.data.params;
    return chunk.data.images.map(({ key }) => errorRecord(key, new DetqError(code, reason), runtime.model, params));
  }
}

function parseChunk(body: Buffer): ImageRecord[] {
  return body
    .toString('utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as ImageRecord);
}

