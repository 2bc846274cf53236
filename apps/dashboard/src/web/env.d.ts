// esbuild bundles the app's CSS imports.
declare module '*.css';
