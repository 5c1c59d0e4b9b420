// DNS that keeps answering while a host's peer restarts: 3 hosts with a dockerd each and the
// data plane on, in each mode. A container's resolv.conf lists its own host's peer (the bridge gateway)
// first and another live host's peer, through the overlay, second. The peer on h1 is
// restarted while a container on h1 resolves a name on h2 in a bounded loop: no lookup fails.
// Then the peer serving as second resolver is killed, and the container's second moves on.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { useHarness } from '../harness/vitest.ts';
import { waitFor, type Host } from '../harness/harness.ts';
import { addressOf, runContainer, startNetworkMesh } from './network-helpers.ts';

/** The loop's bound: at most this many lookups (about a minute and a half at worst with
 *  busybox's 1 s timeout), and it also stops when the test says so. */
const MAX_LOOKUPS = 600;
/** A port with a listener on the second resolver's host, to show its DNS address answers
 *  nothing but DNS to other hosts' containers. */
const PROBE_PORT = 7777;
/** A listener that logs each connection it accepts, for at most this long. */
const PROBE_LISTENER = [
  'timeout', '300', 'python3', '-u', '-c',
  `import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('0.0.0.0',${PROBE_PORT}))\ns.listen(8)\nwhile True:\n c,a=s.accept()\n print('hit',a[0],flush=True)\n c.close()`,
];
/** Lookups seen before the restart, and after the peer is back, so the loop spans it. */
const AROUND_RESTART = 10;

for (const mode of ['encrypted', 'fast'] as const) {
  describe(`DNS from containers while their host's peer restarts, ${mode} data plane`, () => {
    const mesh = useHarness({ hosts: 3, name: `e2e-dns-failover-${mode}` });

    test('a container keeps resolving names through another host\'s peer while its own restarts', async () => {
      const [h1, h2, h3] = mesh().hosts as [Host, Host, Host];
      await startNetworkMesh([h1, h2, h3], ['--dataplane-mode', mode]);
      await runContainer(h2, 'target');
      await runContainer(h1, 'client');
      const target = await addressOf(h1, 'target');
      await addressOf(h1, 'client');
      const docker = h1.dockerd!;

      // The second nameserver is another host's peer, reachable over the overlay.
      let second = '';
      await waitFor(async () => {
        const text = await docker.mustDocker(['exec', 'client', 'cat', '/etc/resolv.conf']);
        second = /nameserver 169\.254\.53\.1\nnameserver (10\.\d+\.\d+\.\d+)\n/.exec(text)?.[1] ?? '';
        return second !== '';
      }, { timeoutMs: 60_000, what: "client's resolv.conf to list a second resolver on another host" });
      // It answers the mesh's names as the first does, asked directly.
      await waitFor(async () => (await docker.docker(['exec', 'client', 'nslookup', '-type=a', 'target.weft.local', second], { timeoutMs: 15_000 })).stdout.includes(target),
        { timeoutMs: 20_000, what: `the second resolver ${second} to answer target.weft.local` });

      // The DNS address answers DNS only: a service listening on all of that host's addresses
      // is not reachable through it from another host's container, though the host reaches it.
      const dnsAddrOf = async (h: Host) => /inet (10\.[\d.]+)\/32 scope host/.exec((await h.exec(['ip', 'addr', 'show', 'dev', 'lo'])).stdout)?.[1] ?? '';
      const [a2, a3] = [await dnsAddrOf(h2), await dnsAddrOf(h3)];
      expect([a2, a3]).toContain(second);
      const secondHost = second === a2 ? h2 : h3;
      await secondHost.spawn('probe-listener', PROBE_LISTENER);
      const hits = () => fs.readFileSync(path.join(secondHost.dir, 'probe-listener.log'), 'utf8').split('\n').filter((l) => l.startsWith('hit'));
      await waitFor(async () => (await secondHost.exec(['busybox', 'nc', '-w', '2', second, String(PROBE_PORT)], { timeoutMs: 5000 })).code === 0 && hits().length > 0,
        { timeoutMs: 20_000, what: `the probe listener on ${secondHost.name} to accept a connection from its own host` });
      const before = hits().length;
      await docker.docker(['exec', 'client', 'nc', '-w', '3', second, String(PROBE_PORT)], { timeoutMs: 10_000 });
      expect(hits().length, `a remote container reached port ${PROBE_PORT} on the DNS address ${second}`).toBe(before);

      // The loop: one line per lookup, "ok SERVER" or "FAIL N", into a file in the container.
      // busybox nslookup reads only the nameservers from resolv.conf and waits its own timeout
      // (here 1 s) on a server that refused, then asks the next: that is its retry.
      const script = [
        'i=0',
        `while [ $i -lt ${MAX_LOOKUPS} ] && [ ! -e /tmp/stop ]; do`,
        '  i=$((i+1))',
        '  out=$(nslookup -timeout=1 -type=a target.weft.local 2>/dev/null)',
        `  case "$out" in *"${target}"*) echo "ok $(echo "$out" | sed -n 's/^Server:[[:space:]]*//p')" ;; *) echo "FAIL $i" ;; esac`,
        '  sleep 0.05',
        'done >> /tmp/lookups',
        'echo done >> /tmp/lookups',
      ].join('\n');
      await docker.mustDocker(['exec', '-d', 'client', 'sh', '-c', script]);
      const lines = async () => (await docker.mustDocker(['exec', 'client', 'cat', '/tmp/lookups']).catch(() => '')).split('\n').filter((l) => l !== '');
      try {
        await waitFor(async () => (await lines()).length >= AROUND_RESTART, { timeoutMs: 30_000, what: 'lookups to start' });
        await h1.restart();
        await waitFor(async () => (await h1.weftJson<any>(['dns', 'lookup', 'target', '--json'])).rcode === 'NOERROR', { timeoutMs: 60_000, what: 'h1 peer to answer DNS again' });
        const backAt = (await lines()).length;
        await waitFor(async () => (await lines()).length >= backAt + AROUND_RESTART, { timeoutMs: 60_000, what: 'lookups after the restart' });
      } finally {
        await docker.docker(['exec', 'client', 'touch', '/tmp/stop']);
      }
      await waitFor(async () => (await lines()).includes('done'), { timeoutMs: 30_000, what: 'the lookup loop to end' });
      const got = await lines();
      const failed = got.filter((l) => l.startsWith('FAIL'));
      const bySecond = got.filter((l) => l === `ok ${second}`);
      expect(failed, `failed lookups of ${got.length - 1}`).toEqual([]);
      // While h1's peer was down, the lookups were answered by the second resolver.
      expect(bySecond.length).toBeGreaterThan(0);
      expect(got.filter((l) => l === 'ok 169.254.53.1').length).toBeGreaterThan(0);

      // Kept current: when the host serving as second resolver goes, the other one takes its place.
      // Each peer's DNS address sits on its host's lo (host scope: the host sends nothing from it).
      const [gone, other] = second === a2 ? [h2, a3] : [h3, a2];
      await gone.kill();
      await waitFor(async () => (await docker.mustDocker(['exec', 'client', 'cat', '/etc/resolv.conf'])).includes(`nameserver ${other}\n`),
        { timeoutMs: 60_000, what: `the second resolver to move to ${other} once ${gone.name}'s peer is dead` });
    });
  });
}
