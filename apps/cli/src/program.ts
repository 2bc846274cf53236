import { Command } from 'commander';
import * as bench from './commands/bench';
import * as buildEngine from './commands/build-engine';
import * as evalCommand from './commands/eval';
import * as info from './commands/info';
import * as label from './commands/label';

/** The detq command tree; each command lives in commands/<name>.ts and registers itself. */
export function createProgram(): Command {
  const program = new Command('detq')
    .description('Batch object-detection labelling with YOLO11')
    .version('0.1.0')
    .exitOverride()
    .showHelpAfterError();
  for (const command of [label, evalCommand, info, bench, buildEngine]) command.register(program);
  return program;
}
