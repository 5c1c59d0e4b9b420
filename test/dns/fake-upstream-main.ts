// The fake upstream as a process, for a peer in a harness host's namespace to forward to:
//   node fake-upstream-main.ts HOST PORT NAME=A.B.C.D ...
// It prints "listening" once both sockets are bound and runs until it is killed.
import { FakeUpstream } from './fake-upstream.ts';

const [host, port, ...records] = process.argv.slice(2);
if (!host || !port) {
  process.stderr.write('usage: fake-upstream-main.ts HOST PORT NAME=A.B.C.D ...\n');
  process.exit(2);
}
const u = await FakeUpstream.start(host, Number(port));
for (const r of records) {
  const [name, addr] = r.split('=');
  if (!name || !addr) throw new Error(`not NAME=A.B.C.D: ${r}`);
  u.records.set(name.toLowerCase(), { addrs: [addr.split('.').map(Number)], ttl: 30 });
}
process.stdout.write(`listening on ${host}:${u.port}\n`);
