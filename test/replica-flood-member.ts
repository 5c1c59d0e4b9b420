// A mesh member in a worker thread, for test/replica-flood.test.ts: its own event loop, so that
// it notices when the victim (in the test's thread) goes silent, which a member sharing the
// victim's stalled loop could not. Loaded by plain Node (type stripping), not by vitest.
import { parentPort, workerData } from 'node:worker_threads';
import { Peer } from '../mesh/peer.ts';
import type { PeerConfig } from '../mesh/config.ts';

type Command = { t: 'put'; key: string; value: string } | { t: 'stop' };

const port = parentPort;
if (port === null) throw new Error('replica-flood-member.ts runs as a worker thread');
const { config, watch } = workerData as { config: PeerConfig; watch: string };

const peer = await Peer.start(config);
peer.events.subscribe((e) => {
  if (e.peer?.id === watch) port.postMessage({ t: 'event', type: e.type });
});
const timer = setInterval(() => {
  port.postMessage({ t: 'state', state: peer.membership.members().find((m) => m.id === watch)?.state ?? 'unknown' });
}, 100);
port.on('message', (c: Command) => {
  if (c.t === 'put') {
    void peer.replica.put(c.key, c.value).then(() => port.postMessage({ t: 'put' }));
  } else {
    clearInterval(timer);
    void peer.stop().finally(() => {
      port.postMessage({ t: 'stopped' });
      port.close();
    });
  }
});
port.postMessage({ t: 'started', id: peer.identity.id, addr: `${peer.advertise.host}:${peer.advertise.port}` });
