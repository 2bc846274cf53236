export * from './create-server';
export * from './metrics';
export * from './run-api';
export * from './token-store';
export * from './dashboard-routes';
