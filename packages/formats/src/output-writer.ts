import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { FatalError, keyProblem, resolveInside, type ImageRecord, type OutputFormat } from '@detq/core';
import { isS3Uri, joinUri, type ObjectStore } from '@detq/storage';
import { renderCoco, type CocoIdMap } from './coco';
import { readJsonl, recordLine } from './jsonl';
import { renderLabelStudio } from './label-studio';
import { renderYoloTxt, yoloLabelPath } from './yolo-txt';

export interface OutputOptions {
  /** A folder or an s3:// prefix. */
  outUri: string;
  formats: readonly OutputFormat[];
  names: readonly string[];
  store: ObjectStore;
  /** YOLO txt: append the confidence column. */
  saveConf?: boolean;
  cocoIds?: CocoIdMap;
  /** Label Studio `data.image` for a key (default: the key itself). */
  imageUri?: (key: string) => string;
  /** Append to an existing detections.jsonl (`--resume`) instead of starting it anew. */
  append?: boolean;
}

export const OUTPUT_FILES = {
  jsonl: 'detections.jsonl',
  coco: 'coco.json',
  yolo: 'labels/',
  labelstudio: 'labelstudio.json',
} as const satisfies Record<OutputFormat, string>;

/** A text file written piece by piece (a manifest of any size), with backpressure. */
export interface Appender {
  write(text: string): Promise<void>;
  end(): Promise<void>;
}

/** PUTs of small files (YOLO labels) in flight at once. */
const SMALL_FILE_CONCURRENCY = 16;
/** Files uploaded after everything else, in this order: summary.json last marks a complete output. */
const LAST_FILES = ['manifest.json', 'summary.json'];

/**
 * Writes a run's outputs. Records stream into detections.jsonl (the canonical format, always written);
 * finish() renders the other formats from that file, so all formats agree box for box and memory stays
 * bounded. An s3:// output is staged in a temp folder and uploaded by finish(): large files as streamed
 * (multipart) uploads, YOLO labels a bounded number at a time, summary.json last; the staging folder is
 * removed whether the upload succeeds or not (and by abort() when the run stops before finish()).
 */
export class OutputWriter {
  private constructor(
    private readonly options: OutputOptions,
    private readonly dir: string,
    private readonly jsonl: WriteStream,
  ) {}

  static async open(options: OutputOptions): Promise<OutputWriter> {
    const remote = isS3Uri(options.outUri);
    try {
      const dir = remote ? await mkdtemp(join(tmpdir(), 'detq-out-')) : options.outUri;
      await mkdir(dir, { recursive: true });
      const path = join(dir, OUTPUT_FILES.jsonl);
      const jsonl = createWriteStream(path, { flags: options.append ? 'a' : 'w' });
      await new Promise<void>((resolve, reject) => {
        jsonl.once('open', () => resolve());
        jsonl.once('error', reject);
      });
      return new OutputWriter(options, dir, jsonl);
    } catch (err) {
      throw new FatalError('OUTPUT_FAILED', `cannot write to --out ${options.outUri}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Appends one record as one whole line (one write), so a crash never leaves half a record behind. */
  async add(record: ImageRecord): Promise<void> {
    if (!this.jsonl.write(recordLine(record))) await new Promise<void>((r) => this.jsonl.once("drain", () => r()));
  }

  /** Opens an extra file under the output to be written piece by piece (a streamed manifest). */
  async appender(rel: string): Promise<Appender> {
    let path: string;
    try {
      path = resolveInside(this.dir, rel);
    } catch (err) {
      throw new FatalError('OUTPUT_FAILED', (err as Error).message, { cause: err });
    }
    await mkdir(dirname(path), { recursive: true });
    const out = createWriteStream(path);
    return {
      write: async (text) => {
        if (!out.write(text)) await new Promise<void>((r) => out.once('drain', () => r()));
      },
      end: () => new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve()))),
    };
  }

  /** Stops without uploading: removes the staging folder of an s3:// output. */
  async abort(): Promise<void> {
    this.jsonl.destroy();
    if (isS3Uri(this.options.outUri)) await rm(this.dir, { recursive: true, force: true });
  }

  /**
   * Writes a file (labels, previews, manifest) at `rel` under the output's `under` folder; refuses any
   * path that would leave that folder, whatever the key it came from.
   */
  async writeFile(rel: string, body: Buffer | string, under = '.'): Promise<void> {
    let path: string;
    try {
      path = resolveInside(under === '.' ? this.dir : resolveInside(this.dir, under), rel);
    } catch (err) {
      throw new FatalError('OUTPUT_FAILED', (err as Error).message, { cause: err });
    }
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, body);
  }

  /** Renders the remaining formats and, for s3:// outputs, uploads everything. Returns the files written. */
  async finish(): Promise<string[]> {
    await new Promise<void>((resolve, reject) => this.jsonl.end((err?: Error | null) => (err ? reject(err) : resolve())));
    const { formats, names } = this.options;
    const jsonlPath = join(this.dir, OUTPUT_FILES.jsonl);
    const records = () => readJsonl(jsonlPath);
    try {
      if (formats.includes('coco')) await writeChunks(join(this.dir, OUTPUT_FILES.coco), renderCoco(records, names, this.options.cocoIds));
      if (formats.includes('labelstudio'))
        await writeChunks(join(this.dir, OUTPUT_FILES.labelstudio), renderLabelStudio(records(), this.options.imageUri ?? ((k) => k)));
      if (formats.includes('yolo')) {
        await this.writeFile('classes.txt', names.map((n) => `${n}\n`).join(''), OUTPUT_FILES.yolo);
        for await (const r of records()) {
          if (!r.error) await this.writeFile(yoloLabelPath(r.key), renderYoloTxt(r, this.options.saveConf ?? false), OUTPUT_FILES.yolo);
        }
      }
      const files = await listFiles(this.dir);
      if (isS3Uri(this.options.outUri)) await this.upload(files);
      return files.map((rel) => joinUri(this.options.outUri, rel));
    } catch (err) {
      if (err instanceof FatalError) throw err;
      throw new FatalError('OUTPUT_FAILED', `cannot write outputs to ${this.options.outUri}: ${(err as Error).message}`, { cause: err });
    } finally {
      if (isS3Uri(this.options.outUri)) await rm(this.dir, { recursive: true, force: true });
    }
  }

  private async upload(files: readonly string[]): Promise<void> {
    const { store, outUri } = this.options;
    // Defence in depth: no staged file may name an object outside the output prefix.
    for (const rel of files) {
      const problem = keyProblem(rel);
      if (problem) throw new FatalError('OUTPUT_FAILED', `refusing to upload ${JSON.stringify(rel)}: it ${problem}`);
    }
    const small = files.filter((rel) => rel.startsWith(OUTPUT_FILES.yolo));
    const large = files.filter((rel) => !rel.startsWith(OUTPUT_FILES.yolo) && !LAST_FILES.includes(rel));
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(SMALL_FILE_CONCURRENCY, small.length) }, async () => {
        while (next < small.length) {
          const rel = small[next++]!;
          await store.put(joinUri(outUri, rel), await readFile(join(this.dir, rel)));
        }
      }),
    );
    for (const rel of [...large, ...LAST_FILES.filter((f) => files.includes(f))])
      await store.upload(joinUri(outUri, rel), () => createReadStream(join(this.dir, rel)), contentTypeOf(rel));
  }
}

function contentTypeOf(rel: string): string | undefined {
  return rel.endsWith('.json') ? 'application/json' : rel.endsWith('.jsonl') ? 'application/x-ndjson' : undefined;
}

async function writeChunks(path: string, chunks: AsyncIterable<string>): Promise<void> {
  const out = createWriteStream(path);
  for await (const c of chunks) if (!out.write(c)) await new Promise<void>((r) => out.once("drain", () => r()));
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
}

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}
