#!/usr/bin/env node
// detq runs from its TypeScript sources through tsx: no build step between a clone and a run.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/main.ts');
process.exitCode = await main(process.argv);
