import { Command } from 'commander';
import { DETQ_VERSION } from '@detq/core';
import * as bench from './commands/bench';
import * as buildEngine from './commands/build-engine';
import * as evalCommand from './commands/eval';
import * as info from './commands/info';
import * as label from './commands/label';
import * as enqueueCommand from './commands/enqueue';
import * as statusCommand from './commands/status';
import * as watchCommand from './commands/watch';
import * as cancelCommand from './commands/cancel';
import * as finaliseCommand from './commands/finalise';
import * as workerCommand from './commands/worker';
import * as apiCommand from './commands/api';
import * as scheduleCommand from './commands/schedule';
import * as tokenCommand from './commands/token';
import * as verifyCommand from './commands/verify';

/** The detq command tree; each command lives in commands/<name>.ts and registers itself. */
export function createProgram(): Command {
  const program = new Command('detq')
    .description('Batch object-detection labelling with YOLO11')
    .version(DETQ_VERSION)
    .exitOverride()
    .showHelpAfterError();
  for (const command of [label, evalCommand, info, bench, buildEngine, verifyCommand, enqueueCommand, statusCommand, watchCommand, cancelCommand, finaliseCommand, workerCommand, apiCommand, scheduleCommand, tokenCommand]) command.register(program);
  return program;
}
