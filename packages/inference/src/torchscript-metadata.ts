import yauzl from 'yauzl';
import { FatalError } from '@detq/core';
import type { ModelMetadata } from './onnx-metadata';

/** Ultralytics' TorchScript exports carry their metadata as JSON in the archive's `<name>/extra/config.txt`. */
const CONFIG_RE = /^[^/]+\/extra\/config\.txt$/;
const MAX_CONFIG_BYTES = 1 << 20;

/**
 * Reads a TorchScript's class names and input size on the CPU, from the zip's central directory and the
 * one small entry: the weights are never read, and no LibTorch or GPU is needed.
 */
export async function readTorchScriptMetadata(path: string): Promise<ModelMetadata> {
  let text: string | undefined;
  try {
    text = await readZipEntry(path, CONFIG_RE);
  } catch (err) {
    throw new FatalError('BAD_MODEL', `cannot read TorchScript ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (text === undefined) return { names: [], stride: 32, props: {} };
  let config: { names?: Record<string, string> | string[]; imgsz?: number[]; stride?: number; task?: string };
  try {
    config = JSON.parse(text) as typeof config;
  } catch (err) {
    throw new FatalError('BAD_MODEL', `TorchScript ${path}: extra/config.txt is not JSON`, { cause: err });
  }
  const names: string[] = [];
  if (Array.isArray(config.names)) names.push(...config.names.map(String));
  else for (const [i, n] of Object.entries(config.names ?? {})) names[Number(i)] = String(n);
  const meta: ModelMetadata = {
    names: Array.from(names, (n, i) => n ?? String(i)),
    stride: Number(config.stride ?? 32) || 32,
    props: { config: text },
  };
  const [h, w] = config.imgsz ?? [];
  if (h) meta.imgsz = [h, w ?? h];
  if (config.task) meta.task = config.task;
  return meta;
}

/** The text of the first entry whose name matches, or undefined when there is none. */
function readZipEntry(path: string, name: RegExp): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    yauzl.open(path, { lazyEntries: true, autoClose: true }, (err, zip) => {
      if (err) return reject(err);
      zip.on('error', reject);
      zip.on('end', () => resolve(undefined));
      zip.on('entry', (entry: yauzl.Entry) => {
        if (!name.test(entry.fileName)) return zip.readEntry();
        if (entry.uncompressedSize > MAX_CONFIG_BYTES) return reject(new Error(`${entry.fileName} is ${entry.uncompressedSize} bytes`));
        zip.openReadStream(entry, (e, stream) => {
          if (e) return reject(e);
          const chunks: Buffer[] = [];
          stream.on('data', (c: Buffer) => chunks.push(c));
          stream.on('error', reject);
          stream.on('end', () => {
            zip.close();
            resolve(Buffer.concat(chunks).toString('utf8'));
          });
        });
      });
      zip.readEntry();
    });
  });
}
