import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { FatalError } from '@detq/core';
import { readEngineHeader } from './engine-file';
import { readOnnxModelMetadata, type ModelMetadata } from './onnx-metadata';
import { readTorchScriptMetadata } from './torchscript-metadata';

/**
 * Where every model kind reports its class names and input size, read on the CPU before any engine
 * loads (so `--classes person` works whatever the engine):
 * - .onnx: Ultralytics' metadata_props;
 * - .torchscript / .pt: the archive's extra/config.txt;
 * - .engine: detq's TensorRT engine file header (copied from the ONNX metadata at build time): the
 *   header reader belongs to the TensorRT engine file format (engine-file.ts).
 */
export async function readModelMetadata(path: string): Promise<ModelMetadata> {
  if (/\.onnx$/i.test(path)) return readOnnxModelMetadata(path);
  if (/\.(torchscript|pt)$/i.test(path)) return readTorchScriptMetadata(path);
  if (/\.engine$/i.test(path)) {
    const header = await readEngineHeader(path);
    return { names: header.classNames, stride: 32, props: {} };
  }
  return { names: [], stride: 32, props: {} };
}

/**
 * `--names`: class names for models that carry none (or to rename them). A .yaml/.yml is read as
 * Ultralytics' data YAML (`names:` as a list or an index map) or a bare list; anything else as text,
 * one name a line.
 */
export async function readNamesFile(path: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new FatalError('USAGE', `--names: cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  let names: unknown;
  if (/\.ya?ml$/i.test(path)) {
    let doc: unknown;
    try {
      doc = parseYaml(text);
    } catch (err) {
      throw new FatalError('USAGE', `--names: ${path} is not YAML: ${(err as Error).message}`, { cause: err });
    }
    names = doc !== null && typeof doc === 'object' && !Array.isArray(doc) && 'names' in doc ? doc.names : doc;
  } else {
    names = text.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  }
  const list: string[] = [];
  if (Array.isArray(names)) list.push(...names.map(String));
  else if (names !== null && typeof names === 'object')
    for (const [i, n] of Object.entries(names)) {
      if (!/^\d+$/.test(i)) throw new FatalError('USAGE', `--names: ${path}: class ids must be integers, got ${JSON.stringify(i)}`);
      list[Number(i)] = String(n);
    }
  if (list.length === 0) throw new FatalError('USAGE', `--names: ${path} lists no class names`);
  return Array.from(list, (n, i) => n ?? String(i));
}
