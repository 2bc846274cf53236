import { createRequire } from 'node:module';
import type { Command } from 'commander';
import { loadNativeAddon, nativeUnavailableReason } from '@detq/inference';

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
    .action((o: { json?: boolean }) => {
      const info = collectInfo();
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
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
