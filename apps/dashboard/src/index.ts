export * from './serve-dashboard';
