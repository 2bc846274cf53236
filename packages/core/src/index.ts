export * from './errors';
export * from './letterbox';
export * from './paths';
export * from './schemas';
export * from './job-spec';
export * from './label-options';
export * from './hash';
export * from './fault-settings';
