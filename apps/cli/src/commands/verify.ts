import type { Command } from 'commander';
import { describeFlagIssues, FatalError, verifyFlagsSchema } from '@detq/core';
import { describeParity, runParityGate } from '@detq/pipeline';

export function register(program: Command): void {
  program
    .command('verify')
    .description('Parity gate: an engine against a reference ONNX on the CPU path (exit 0 pass, 3 refused)')
    .requiredOption('--engine <engine>', 'onnxruntime-cpu | torch | tensorrt')
    .requiredOption('--model <path>', 'the model file the engine runs (.engine, .torchscript, .onnx)')
    .option('--reference <onnx>', 'reference ONNX model, run on onnxruntime-cpu (default: --model when it is an ONNX)')
    .requiredOption('--images <dir>', 'golden set of images')
    .option('--labels <dir>', 'YOLO labels: also refuse an mAP50-95 drift above 0.01')
    .option('--half', 'FP16 on GPU engines')
    .option('--batch <n>', 'images per engine call', '8')
    .option('--threads <n>', 'inference threads (default: all cores)')
    .option('--json', 'print the figures as JSON on stdout')
    .action(async (raw: Record<string, unknown>) => {
      const parsed = verifyFlagsSchema.safeParse(raw, { reportInput: true });
      if (!parsed.success) throw new FatalError('USAGE', describeFlagIssues(parsed.error));
      const f = parsed.data;
      const reference = f.reference ?? (f.model.endsWith('.onnx') ? f.model : undefined);
      if (!reference) throw new FatalError('USAGE', '--reference: needed when --model is not an ONNX (the reference runs on onnxruntime-cpu)');
      const figures = await runParityGate({
        engine: f.engine,
        model: f.model,
        reference,
        images: f.images,
        half: f.half,
        batch: f.batch,
        ...(f.labels && { labels: f.labels }),
        ...(f.threads && { threads: f.threads }),
        notice: (line) => process.stderr.write(`detq: ${line}\n`),
      });
      if (f.json) process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`);
      else process.stdout.write(`${describeParity(figures)}\n`);
      if (!figures.passed) throw new FatalError('BAD_MODEL', `${f.engine} ${f.model} refused by the parity gate against ${reference}: ${figures.reasons.join('; ')}`);
    });
}
