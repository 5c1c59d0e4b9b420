// Runs inside a host's network namespace: forwards a unix socket (reachable from the bench
// process in the root namespace, since unix socket paths are not network-namespaced) to a
// TCP address on that namespace's loopback, where the Serf agent's RPC listens. It lets the
// bench talk to Serf in-process, as it talks to weft over weft.sock, with no CLI start-up in
// the measurement.
//
//   node serf-forward.ts /tmp/wt5-x/h1/serf-rpc.sock 127.0.0.1:7373
import fs from 'node:fs';
import net from 'node:net';

const [sockPath, target] = process.argv.slice(2);
if (sockPath === undefined || target === undefined || !/^[\d.]+:\d+$/.test(target)) {
  console.error('usage: serf-forward.ts UNIX_SOCKET_PATH IP:PORT');
  process.exit(2);
}
const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];

fs.rmSync(sockPath, { force: true });
const server = net.createServer((client) => {
  const upstream = net.connect({ host, port });
  upstream.setNoDelay(true);
  const close = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', close);
  upstream.on('error', close);
  client.on('close', close);
  upstream.on('close', close);
  client.pipe(upstream);
  upstream.pipe(client);
});
server.on('error', (e) => {
  console.error(`serf-forward: ${sockPath}: ${e.message}`);
  process.exit(1);
});
server.listen(sockPath, () => console.log(`serf-forward: ${sockPath} -> ${target}`));
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    server.close();
    fs.rmSync(sockPath, { force: true });
    process.exit(0);
  });
}
