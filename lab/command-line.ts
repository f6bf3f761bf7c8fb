// The lab's small command-line programs (probe, flow-load) read their
// arguments alike: a mistake is one line on stderr with the usage, exit 2.
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';

/** The parsed arguments, or undefined after saying what was wrong (the caller exits 2). */
export function parseLabArgs<O extends ParseArgsOptionsConfig>(program: string, usage: string, argv: string[], options: O) {
  try {
    return parseArgs({ args: argv, allowPositionals: true, options });
  } catch (error) {
    process.stderr.write(`${program}: ${(error as Error).message}\n${usage}\n`);
    return undefined;
  }
}
