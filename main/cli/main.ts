// Entry point of the `trellis` command: dispatches verbs.
import { runWg } from './wg.ts';

const USAGE = `usage: trellis <command> [args]

commands:
  wg up <file.conf> [--name NAME]   bring up a WireGuard interface from a wg-quick file (foreground)
  wg show [NAME] [--json]           show running WireGuard interfaces
`;

async function main(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  switch (verb) {
    case 'wg':
      return runWg(rest);
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(USAGE);
      return verb === undefined ? 2 : 0;
    default:
      process.stderr.write(`trellis: unknown command ${JSON.stringify(verb)}\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`trellis: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);
