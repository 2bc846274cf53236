export * from './create-server';
export * from './metrics';
export * from './openapi';
export * from './run-api';
export * from './token-store';
export * from './dashboard-routes';
