// A tiny command line around LocalNodes, for tests: LocalNodes works in the network namespace
// of the process that runs it (the host peer's), so a test runs this inside a harness host's
// namespace. Every run is a new LocalNodes on the directory, as after a host peer restart.
//
//   node local-nodes-cli.ts '{"op":"create","dir":D,"requests":[...]}'   → [LocalNode, ...]
//   node local-nodes-cli.ts '{"op":"list","dir":D}'                      → [LocalNode, ...]
//   node local-nodes-cli.ts '{"op":"destroy","dir":D,"names":[...]}'     → null
//   node local-nodes-cli.ts '{"op":"gateway","dir":D}'                   → "172.30.83.1"
//
// Prints one JSON line, {"ok":true,"result":...} or {"ok":false,"error":"..."} (several
// requests run concurrently, each with its own outcome); logs go to stderr.
import { errorText, logger } from '../../mesh/log.ts';
import { currentWeftCommand, LocalNodes, type LocalNodeRequest } from '../../provisioner/local/local-nodes.ts';

interface Command {
  op: 'create' | 'list' | 'destroy' | 'gateway';
  dir: string;
  subnet?: string;
  requests?: LocalNodeRequest[];
  names?: string[];
}

type Outcome = { ok: true; result: unknown } | { ok: false; error: string };

async function settle(p: Promise<unknown>): Promise<Outcome> {
  try {
    return { ok: true, result: (await p) ?? null };
  } catch (e) {
    return { ok: false, error: errorText(e) };
  }
}

const cmd = JSON.parse(process.argv[2] ?? '{}') as Command;
const nodes = new LocalNodes({ dir: cmd.dir, log: logger('local-nodes'), weft: currentWeftCommand(), ...(cmd.subnet ? { subnet: cmd.subnet } : {}) });
let out: Outcome | Outcome[];
switch (cmd.op) {
  case 'create':
    out = await Promise.all((cmd.requests ?? []).map((r) => settle(nodes.create(r))));
    break;
  case 'destroy':
    out = await Promise.all((cmd.names ?? []).map((n) => settle(nodes.destroy(n))));
    break;
  case 'list':
    out = await settle(nodes.list());
    break;
  case 'gateway':
    out = await settle(Promise.resolve(nodes.gateway()));
    break;
  default:
    out = { ok: false, error: `unknown op ${JSON.stringify(cmd.op)}` };
}
process.stdout.write(`${JSON.stringify(out)}\n`);
