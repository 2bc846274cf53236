export * from './create-worker';
export * from './run-worker';
export * from './gpu-devices';
export * from './supervisor';
export * from './engine-cache';
export * from './health-server';
