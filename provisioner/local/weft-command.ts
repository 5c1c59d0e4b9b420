// How to run weft from the running peer: the same Node, the same build (compiled dist/ or the
// TypeScript sources) and the flags bin/weft gives it, so a node's peer is the very weft that
// made it.
import { fileURLToPath } from 'node:url';

/** bin/weft's young-generation limit: a peer's allocations are small and short-lived, and V8's
 *  default semi-spaces alone cost ~20 MB of resident memory per peer (bench/memory.ts). */
const SEMI_SPACE_FLAG = '--max-semi-space-size=2';
/** Running the TypeScript sources through Node's type stripping warns once per process. */
const TS_FLAG = '--disable-warning=ExperimentalWarning';

/**
 * argv prefix that runs the weft CLI: [node, flags..., <root>/cli/main.ts] from the sources, or
 * [node, flags..., <root>/dist/cli/main.js] when this module itself runs compiled (it is then
 * dist/provisioner/local/weft-command.js, beside dist/cli/main.js).
 */
export function currentWeftCommand(): string[] {
  const compiled = import.meta.url.endsWith('.js');
  const entry = fileURLToPath(new URL(compiled ? '../../cli/main.js' : '../../cli/main.ts', import.meta.url));
  return [process.execPath, SEMI_SPACE_FLAG, ...(compiled ? [] : [TS_FLAG]), entry];
}
