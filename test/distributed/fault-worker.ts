// A real `detq worker` process whose engine breaks: after DETQ_TEST_ENGINE_OK_BATCHES good batches every
// engine call fails as a dead ONNX Runtime thread would. Started by the fault tests with `node --import tsx`.
import { EXIT_CODES, FatalError } from '@detq/core';
import type { Engine } from '@detq/inference';
import { runWorker, workerSettingsFromEnv } from '@detq/worker';

const okBatches = Number(process.env.DETQ_TEST_ENGINE_OK_BATCHES ?? '0');
let calls = 0;
const decorateEngine = (engine: Engine): Engine => ({
  info: engine.info,
  infer: async (frames, params) => {
    if (++calls > okBatches) throw new Error('injected fault: the ONNX Runtime session thread is gone');
    return engine.infer(frames, params);
  },
  dispose: () => engine.dispose(),
});

try {
  await runWorker(workerSettingsFromEnv(), { decorateEngine });
} catch (err) {
  process.stderr.write(`detq: ${(err as Error).message}\n`);
  process.exitCode = err instanceof FatalError ? EXIT_CODES[err.exit] : EXIT_CODES.UNEXPECTED;
}
