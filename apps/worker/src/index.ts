export * from './create-worker';
export * from './run-worker';
