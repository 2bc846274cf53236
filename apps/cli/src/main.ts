import { CommanderError } from 'commander';
import { EXIT_CODES, FatalError } from '@detq/core';
import { createProgram } from './program';

/** Runs the CLI and returns the process exit code (documented in the README). */
export async function main(argv: string[]): Promise<number> {
  const program = createProgram();
  try {
    await program.parseAsync(argv);
    return EXIT_CODES.OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are not errors; commander already printed its message.
      return err.exitCode === 0 ? EXIT_CODES.OK : EXIT_CODES.USAGE;
    }
    if (err instanceof FatalError) {
      process.stderr.write(`detq: ${err.message}\n`);
      return EXIT_CODES[err.exit];
    }
    process.stderr.write(`detq: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return EXIT_CODES.UNEXPECTED;
  }
}
