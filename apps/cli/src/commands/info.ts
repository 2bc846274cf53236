import { createRequire } from 'node:module';
import type { Command } from 'commander';
import type { EngineHeader } from '@detq/core';
import { loadNativeAddon, nativeUnavailableReason, readEngineHeader } from '@detq/inference';

interface EngineStatus {
  kind: 'onnxruntime-cpu' | 'torch' | 'tensorrt';
  available: boolean;
  version: string | null;
  reason?: string;
}

export interface DetqInfo {
  cuda: {
    available: boolean;
    toolkit: string | null;
    runtime: string | null;
    driver: string | null;
    devices: { index: number; name: string; computeCapability: string; totalMemoryBytes: number }[];
    reason?: string;
  };
  engines: EngineStatus[];
  /** With --engine-file: that TensorRT engine file's header (key, class names, parity figures). */
  engineFile?: EngineHeader & { path: string };
}

/** What this machine can run: CUDA (as the native addon sees it) and each engine with its version or why not. */
export function collectInfo(): DetqInfo {
  const ortVersion = (createRequire(import.meta.url)('onnxruntime-node/package.json') as { version: string }).version;
  const engines: EngineStatus[] = [{ kind: 'onnxruntime-cpu', available: true, version: ortVersion }];
  let cuda: DetqInfo['cuda'];
  try {
    const addon = loadNativeAddon();
    const c = addon.cudaInfo();
    cuda = {
      available: c.devices.length > 0,
      toolkit: addon.buildInfo.cudaToolkit,
      runtime: c.runtimeVersion,
      driver: c.driverVersion,
      devices: c.devices.map(({ index, name, computeCapability, totalMemoryBytes }) => ({ index, name, computeCapability, totalMemoryBytes })),
      ...(c.error && { reason: c.error }),
    };
    for (const kind of ['torch', 'tensorrt'] as const) {
      const reason = nativeUnavailableReason(kind);
      engines.push({ kind, available: !reason, version: addon.buildInfo[kind], ...(reason && { reason }) });
    }
  } catch (err) {
    const reason = (err as Error).message;
    cuda = { available: false, toolkit: null, runtime: null, driver: null, devices: [], reason };
    for (const kind of ['torch', 'tensorrt'] as const) engines.push({ kind, available: false, version: null, reason });
  }
  return { cuda, engines };
}

export function register(program: Command): void {
  program
    .command('info')
    .description('CUDA devices and the inference engines available here (onnxruntime-cpu, torch, tensorrt)')
    .option('--json', 'print as JSON')
    .option('--engine-file <file>', "also show a TensorRT engine file's header: what it was built for and its parity figures")
    .action(async (o: { json?: boolean; engineFile?: string }) => {
      const info: DetqInfo = collectInfo();
      if (o.engineFile) info.engineFile = { path: o.engineFile, ...(await readEngineHeader(o.engineFile)) };
      if (o.json) {
        process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
        return;
      }
      const c = info.cuda;
      const lines = [
        `CUDA: ${c.available ? `toolkit ${c.toolkit}, runtime ${c.runtime}, driver ${c.driver}` : `not available (${c.reason})`}`,
        ...c.devices.map((d) => `  GPU ${d.index}: ${d.name} (sm ${d.computeCapability}, ${(d.totalMemoryBytes / 2 ** 30).toFixed(0)} GiB)`),
        'Engines:',
        ...info.engines.map((e) => `  ${e.kind.padEnd(16)} ${e.available ? `available  ${e.version}` : `unavailable: ${e.reason}`}`),
        ...(info.engineFile ? describeEngineFile(info.engineFile) : []),
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}

function describeEngineFile(e: EngineHeader & { path: string }): string[] {
  const k = e.key;
  const p = e.parity;
  return [
    `Engine file ${e.path}:`,
    `  built from ${e.model} (sha256 ${k.modelSha256.slice(0, 12)}) on ${k.gpu} (sm ${k.computeCapability}) with TensorRT ${k.tensorrt}, ${e.builtAt}`,
    `  ${k.precision} (${e.quantization} quantisation), input ${k.input} ${k.min} .. ${k.max} (opt ${k.opt}), ${k.profiles} profiles, ${e.classNames.length} classes, ${e.planBytes} plan bytes`,
    p
      ? `  parity ${p.passed ? 'passed' : 'refused'} against ${p.reference} on ${p.images} images: ${p.matchedBoxes}/${p.referenceBoxes} boxes matched at IoU >= ${p.minIou} ` +
        `(${(100 * p.matchedFraction).toFixed(2)} %)${p.map5095 !== undefined ? `, mAP50-95 ${p.map5095.toFixed(4)} vs ${p.referenceMap5095?.toFixed(4)}` : ''}`
      : '  parity: not verified (detq build-engine --verify <images>)',
  ];
}
