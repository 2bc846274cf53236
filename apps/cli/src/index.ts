export { main } from './main';
export { createProgram } from './program';
