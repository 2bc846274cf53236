/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
// The browser app is typechecked with the rest of the repo; esbuild bundles its CSS imports.
declare module '*.css';
