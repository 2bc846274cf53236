import type { Command } from 'commander';
import { describeFlagIssues, FatalError, labelFlagsSchema, parseClasses, type RunSummary } from '@detq/core';
import { resolveModel, runLocal, type Progress } from '@detq/pipeline';
import { ProgressBar } from '../progress-bar';

export function register(program: Command): void {
  program
    .command('label')
    .description('Label images: a folder, file, glob, list file, manifest or s3:// prefix')
    .argument('<input>', 'folder (recursive, follows symlinks, skips hidden), image file, glob, .txt list of paths/URIs, .jsonl/.csv manifest, or s3://bucket/prefix/')
    .requiredOption('--out <output>', 'output folder or s3:// prefix')
    .option('--include <globs>', 'keep only keys matching one of these globs (comma-separated; default: image extensions)')
    .option('--exclude <globs>', 'leave out keys matching one of these globs (comma-separated)')
    .option('--allow-empty', 'an input with no images exits 0 with empty outputs (default: exit 5)')
    .option('--resume', 'skip images already in <out>/detections.jsonl (same model and params) and append the rest')
    .option('--model <path>', 'model file or URI (default: $DETQ_MODEL, ../shared/models/yolo11n-dyn.onnx, then the pinned download)')
    .option('--names <file>', 'class names: a .yaml (names: list or map) or .txt (one a line), for models that carry none')
    .option('--engine <engine>', 'onnxruntime-cpu | torch | tensorrt | auto', 'onnxruntime-cpu')
    .option('--half', 'FP16 on GPU engines')
    .option('--no-cuda-graphs', 'torch: launch the network op by op instead of replaying a captured CUDA graph per batch size')
    .option('--decode <where>', 'JPEG decoding: auto (on the GPU with nvJPEG when the engine can) | cpu', 'auto')
    .option('--conf <n>', 'confidence threshold', '0.25')
    .option('--iou <n>', 'NMS IoU threshold', '0.7')
    .option('--max-det <n>', 'most detections per image', '300')
    .option('--classes <list>', 'keep only these classes (ids or names, comma-separated)')
    .option('--agnostic-nms', 'NMS across classes')
    .option('--multi-label', 'a box may keep several classes (as `yolo val` does)')
    .option('--imgsz <size>', 'input size N or HxW (default: the model metadata)')
    .option('--batch <n>', 'images per engine call (default: 1 on onnxruntime-cpu, where batching gains nothing, else 8)')
    .option('--threads <n>', 'inference threads (default: all cores)')
    .option('--sessions <n>', 'onnxruntime-cpu: sessions running batches side by side, sharing --threads, at most one per thread (default: one per thread up to 4, then one per ~4 threads)')
    .option('--formats <list>', 'jsonl,coco,yolo,labelstudio', 'jsonl')
    .option('--previews <n>', 'write annotated JPEGs of the first N images', '0')
    .option('--save-conf', 'YOLO txt: append the confidence column')
    .option('--coco-ids <map>', 'COCO category ids: contiguous (class+1) | coco91', 'contiguous')
    .option('--max-pixels <n>', 'refuse images above this many pixels', '100000000')
    .option('--json', 'print the summary as JSON on stdout')
    .action(async (input: string, raw: Record<string, unknown>) => {
      const parsed = labelFlagsSchema.safeParse(raw, { reportInput: true });
      if (!parsed.success) throw new FatalError('USAGE', describeFlagIssues(parsed.error));
      const f = parsed.data;
      let classes: number[] | undefined;
      if (f.classes) {
        const { names } = (await resolveModel({ ...(f.model && { model: f.model }), ...(f.names && { names: f.names }) })).metadata;
        try {
          classes = parseClasses(f.classes, names);
        } catch (err) {
          throw new FatalError('USAGE', (err as Error).message);
        }
      }
      const bar = new ProgressBar();
      const summary = await runLocal(
        {
          input,
          out: f.out,
          ...(f.model && { model: f.model }),
          ...(f.names && { names: f.names }),
          ...(f.include && { include: f.include }),
          ...(f.exclude && { exclude: f.exclude }),
          allowEmpty: f.allowEmpty,
          resume: f.resume,
          engine: f.engine,
          half: f.half,
          cudaGraphs: f.cudaGraphs,
          decode: f.decode,
          params: { conf: f.conf, iou: f.iou, maxDet: f.maxDet, agnosticNms: f.agnosticNms, multiLabel: f.multiLabel, ...(classes && { classes }) },
          ...(f.imgsz && { imgsz: f.imgsz }),
          batch: f.batch ?? (f.engine === 'onnxruntime-cpu' ? 1 : 8),
          ...(f.threads && { threads: f.threads }),
          ...(f.sessions && { sessions: f.sessions }),
          formats: f.formats,
          previews: f.previews,
          saveConf: f.saveConf,
          cocoIds: f.cocoIds,
          limits: { maxPixels: f.maxPixels, maxBytes: 256 * 1024 * 1024 },
        },
        { ...(process.stderr.isTTY && { progress: (p: Progress) => bar.update(p) }), notice: (line) => process.stderr.write(`detq: ${line}\n`) },
      );
      bar.done();
      if (f.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
      else process.stderr.write(formatSummary(summary));
    });
}

export function formatSummary(s: RunSummary): string {
  const errors = Object.entries(s.errorsByCode)
    .map(([code, n]) => `${code} ${n}`)
    .join(', ');
  const { counts, timing, provenance } = s;
  const engine = provenance.engines[0];
  return (
    `labelled ${counts.labelled}/${counts.total} images, ${counts.detections} detections, ${counts.failed} errors${errors ? ` (${errors})` : ''}` +
    `${counts.resumed ? `, ${counts.resumed} from the earlier run` : ''}\n` +
    `${timing.imagesPerSecond.toFixed(1)} img/s in ${timing.seconds.toFixed(1)} s with ${provenance.model.name} on ${provenance.model.engine}${engine ? ` (${engine.runtimeVersion})` : ''}\n` +
    `wrote ${s.files.length} files, e.g. ${s.files[0] ?? '-'}\n`
  );
}
