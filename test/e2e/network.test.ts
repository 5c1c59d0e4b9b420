// End-to-end container networking: 3 hosts with a dockerd each and a weft peer with its data
// plane, plus a 4th host that is not in the mesh (the outsider). Busybox containers labelled
// weft.attach=true get overlay addresses; the tests ping across hosts, move a container to
// another host, crash a peer under running containers, and check isolation.
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { useHarness } from '../harness/vitest.ts';
import { waitFor, type Host } from '../harness/harness.ts';
import { BUSYBOX_IMAGE } from '../harness/dockerd.ts';
import { addressOf, pingFrom, ps, runContainer, startNetworkMesh } from './network-helpers.ts';

for (const mode of ['encrypted', 'fast'] as const) {
  describe(`container networking, ${mode} data plane`, () => {
    const mesh = useHarness({ hosts: 4, name: `e2e-net-${mode}` });

    test('containers on three hosts reach each other by overlay address', async () => {
      const [h1, h2, h3] = mesh().hosts as [Host, Host, Host];
      await startNetworkMesh([h1, h2, h3], ['--dataplane-mode', mode]);
      const hosts = [h1, h2, h3];
      for (const h of hosts) await runContainer(h, `c-${h.name}`);
      const addrs = new Map<string, string>();
      for (const h of hosts) addrs.set(h.name, await addressOf(h1, `c-${h.name}`));
      expect(new Set(addrs.values()).size).toBe(3);
      for (const a of addrs.values()) expect(a).toMatch(/^10\.(3[2-9]|4[0-7])\./);
      for (const from of hosts) {
        for (const to of hosts) {
          if (from === to) continue;
          const addr = addrs.get(to.name)!;
          await waitFor(() => pingFrom(from, `c-${from.name}`, addr), { timeoutMs: 20_000, what: `c-${from.name} to ping c-${to.name} (${addr})` });
        }
      }
      // The container's resolver is the peer's DNS on the bridge, searching weft.local.
      const resolv = await h1.dockerd!.mustDocker(['exec', 'c-h1', 'cat', '/etc/resolv.conf']);
      expect(resolv).toMatch(/nameserver 169\.254\.53\.1/);
      expect(resolv).toMatch(/search .*weft\.local/);
      const ifc = await h1.dockerd!.mustDocker(['exec', 'c-h1', 'ip', 'link', 'show', 'ethwe']);
      expect(ifc).toMatch(mode === 'encrypted' ? /mtu 1420/ : /mtu 1450/);
    });

    test('a host outside the mesh cannot reach containers, even routing the overlay to a member', async () => {
      const [h1, , , h4] = mesh().hosts as [Host, Host, Host, Host];
      const target = await addressOf(h1, 'c-h1');
      await h4.exec(['ip', 'route', 'replace', '10.32.0.0/12', 'via', h1.ip]);
      expect(await h4.ping(target, 2)).toBe(false);
      // The host itself is not exposed: it reaches no other host's containers either.
      expect(await h1.ping(await addressOf(h1, 'c-h2'), 2)).toBe(false);
    });

    if (mode === 'fast') {
      test('a container range that overlaps a route of the host is refused in one clear line', async () => {
        const h4 = mesh().hosts[3] as Host;
        const p = await h4.startPeer({ password: 'x', dataplane: true, args: ['--ipalloc-range', '10.250.0.0/16'] });
        await waitFor(() => !p.running, { timeoutMs: 30_000, what: 'the peer to refuse and exit' });
        expect(p.exit?.code).toBe(1);
        expect(readFileSync(p.logFile, 'utf8')).toMatch(/--ipalloc-range 10\.250\.0\.0\/16 overlaps this host's route to 10\.250\.\d+\.0\/24 \(dev eth0\)/);
      });

      test('weft status dns and ipam; weft reset takes the host off the overlay and hands its space on', async () => {
        const [h1, h2, h3] = mesh().hosts as [Host, Host, Host];
        const dns = await h1.weftJson<any>(['status', 'dns', '--json']);
        expect(dns.domain).toBe('weft.local');
        const scrape = (await h1.exec(['busybox', 'wget', '-q', '-O', '-', 'http://127.0.0.1:6782/metrics'])).stdout;
        // One container, and this peer's own DNS address (the second resolver of other hosts).
        expect(scrape).toMatch(/weft_ipam_addresses\{state="in_use"\} 2/);
        expect(scrape).toMatch(/weft_dns_records \d+/);
        expect(scrape).toMatch(/weft_dns_queries_total\{transport="udp"\} \d+/);
        expect(JSON.stringify(dns.listeners)).toContain('169.254.53.1');
        const before = await h3.weftJson<any>(['status', 'ipam', '--json']);
        expect(before.state).toBe('ready');
        const owned = async (h: Host) => (await h.weftJson<any>(['status', 'ipam', '--json'])).owned as number;
        const othersBefore = (await owned(h1)) + (await owned(h2));
        const r = await h3.weftJson<any>(['reset', '--json']);
        expect(r.containers).toBe(1);
        expect((await h3.exec(['ip', 'link', 'show', 'weft'])).code).not.toBe(0);
        const after = await h3.weftJson<any>(['status', 'ipam', '--json']);
        expect(after.owned).toBe(0);
        expect(after.inUse).toBe(0);
        await waitFor(async () => !(await ps(h1)).some((c) => c.host === 'h3'), { timeoutMs: 20_000, what: "h3's container to leave the registry" });
        // Every address h3 owned now belongs to h1 or h2: nothing lost with the reset.
        await waitFor(async () => (await owned(h1)) + (await owned(h2)) === othersBefore + before.owned, { timeoutMs: 20_000, what: "h1 and h2 to own all of h3's space" });
      });
    }

    if (mode === 'encrypted') {
      test('docker network create -d weft: containers on the plugin network reach each other across hosts', async () => {
        const [h1, h2] = mesh().hosts as [Host, Host];
        for (const [h, name] of [[h1, 'p1'], [h2, 'p2']] as const) {
          const driver = `weft-${h.ns}`;
          await h.dockerd!.mustDocker(['network', 'create', '-d', driver, '--ipam-driver', driver, 'weftnet'], { timeoutMs: 60_000 });
          await h.dockerd!.mustDocker(['run', '-d', '--network', 'weftnet', '--name', name, BUSYBOX_IMAGE, 'sleep', '100000'], { timeoutMs: 60_000 });
        }
        const a1 = await addressOf(h2, 'p1', 'p1 (plugin network) in the registry');
        const a2 = await addressOf(h1, 'p2', 'p2 (plugin network) in the registry');
        await waitFor(() => pingFrom(h1, 'p1', a2), { timeoutMs: 20_000, what: `p1 to ping p2 at ${a2}` });
        await waitFor(() => pingFrom(h2, 'p2', a1), { timeoutMs: 20_000, what: `p2 to ping p1 at ${a1}` });
        for (const [h, name] of [[h1, 'p1'], [h2, 'p2']] as const) await h.dockerd!.mustDocker(['rm', '-f', name]);
        await waitFor(async () => !(await ps(h1)).some((c) => c.name === 'p1' || c.name === 'p2'), { timeoutMs: 20_000, what: 'plugin containers to leave the registry' });
      });

      test('dynamic-link DNS from containers: a service answers all its containers, each container its own name', async () => {
        const [h1, h2, h3] = mesh().hosts as [Host, Host, Host];
        const shop = { 'weft.stack': 'shop', 'weft.service': 'web' };
        await runContainer(h1, 'web-1', shop);
        await runContainer(h2, 'web-2', shop);
        await runContainer(h3, 'client', { 'weft.stack': 'shop', 'weft.service': 'client' });
        const w1 = await addressOf(h3, 'web-1');
        const w2 = await addressOf(h3, 'web-2');
        await addressOf(h3, 'client');
        const lookup = async (h: Host, name: string) => (await h.weftJson<any>(['dns', 'lookup', name, '--json'])).records
          .filter((r: any) => r.section === 'answer' && r.type === 'A').map((r: any) => r.data).sort();
        // Every peer answers from its own replica, as soon as gossip delivered the records.
        for (const h of [h1, h2, h3]) {
          await waitFor(async () => JSON.stringify(await lookup(h, 'web.shop.weft.local')) === JSON.stringify([w1, w2].sort()), { timeoutMs: 20_000, what: `${h.name} to answer web.shop with both containers` });
        }
        // From inside a container, through its resolver (the peer on the bridge) and search domains.
        for (const name of ['web', 'web.shop.weft.local']) {
          await waitFor(async () => {
            // busybox nslookup goes on through the search list for AAAA after finding the A
            // records, and exits 1 when the last name it tries has none: read what it found.
            const r = await h3.dockerd!.docker(['exec', 'client', 'nslookup', name], { timeoutMs: 15_000 });
            return r.stdout.includes(`Name:\tweb.shop.weft.local`) && r.stdout.includes(w1) && r.stdout.includes(w2);
          }, { timeoutMs: 20_000, what: `nslookup ${name} from a container to list both` });
        }
        await waitFor(() => h3.dockerd!.docker(['exec', 'client', 'ping', '-c', '1', '-W', '2', 'web-2'], { timeoutMs: 15_000 }).then((r) => r.code === 0 && r.stdout.includes(w2)), { timeoutMs: 20_000, what: 'ping web-2 by its short name' });
        await waitFor(() => h3.dockerd!.docker(['exec', 'client', 'ping', '-c', '1', '-W', '2', 'web'], { timeoutMs: 15_000 }).then((r) => r.code === 0), { timeoutMs: 20_000, what: 'ping web by its short name' });
        // A rescale is resolvable at once, nothing restarted: web-2 goes, web answers web-1 only.
        await h2.dockerd!.mustDocker(['rm', '-f', 'web-2']);
        await waitFor(async () => JSON.stringify(await lookup(h3, 'web.shop.weft.local')) === JSON.stringify([w1]), { timeoutMs: 20_000, what: 'web to answer web-1 only' });
      });

      test('weft expose gives the host an overlay address; hide takes it back', async () => {
        const [h1, h2] = mesh().hosts as [Host, Host];
        const target = await addressOf(h1, 'c-h2');
        const exposed = (await h1.weft(['expose'])).stdout.trim();
        expect(exposed).toMatch(/^10\./);
        await waitFor(() => h1.ping(target, 2), { timeoutMs: 20_000, what: `h1 (exposed ${exposed}) to reach c-h2 at ${target}` });
        await waitFor(() => pingFrom(h2, 'c-h2', exposed), { timeoutMs: 20_000, what: 'c-h2 to reach the exposed host' });
        await h1.weft(['hide']);
        expect(await h1.ping(target, 2)).toBe(false);
      });

      test('a container recreated on another host keeps its address and is reachable there', async () => {
        const [h1, h2, h3] = mesh().hosts as [Host, Host, Host];
        await runContainer(h1, 'db-a', { 'weft.name': 'shop/db/1' });
        const before = await addressOf(h2, 'db-a');
        await h1.dockerd!.mustDocker(['rm', '-f', 'db-a']);
        await waitFor(async () => !(await ps(h2)).some((c) => c.name === 'db-a'), { timeoutMs: 20_000, what: 'db-a to leave the registry' });
        await runContainer(h3, 'db-b', { 'weft.name': 'shop/db/1' });
        const after = await addressOf(h2, 'db-b');
        expect(after).toBe(before);
        await waitFor(() => pingFrom(h2, 'c-h2', after), { timeoutMs: 20_000, what: 'c-h2 to reach db at its new host' });
      });

      test('weft attach / detach by hand; a stopped container keeps its address for a restart', async () => {
        const [h1, h2] = mesh().hosts as [Host, Host];
        await h2.dockerd!.mustDocker(['run', '-d', '--network', 'none', '--name', 'manual', BUSYBOX_IMAGE, 'sleep', '100000']);
        const r = await h2.weft(['attach', 'manual']);
        expect(r.code, r.stderr).toBe(0);
        const addr = r.stdout.trim();
        expect(addr).toMatch(/^10\./);
        await waitFor(() => pingFrom(h1, 'c-h1', addr), { timeoutMs: 20_000, what: `c-h1 to reach the hand-attached container at ${addr}` });
        const d = await h2.weft(['detach', 'manual']);
        expect(d.stdout.trim()).toBe(addr);
        await waitFor(async () => !(await ps(h1)).some((c) => c.name === 'manual'), { timeoutMs: 20_000, what: 'manual to leave the registry' });
        expect(await pingFrom(h1, 'c-h1', addr)).toBe(false);
        expect((await h2.weft(['detach', 'manual'])).stderr).toMatch(/not attached/);
        expect((await h2.weft(['attach', 'no-such-container'])).stderr).toMatch(/no container "no-such-container"/);
        // docker stop: the record says stopped and DNS drops it; docker start within the hold
        // (30 s) gets the same address back.
        const before = await addressOf(h1, 'c-h2');
        await h2.dockerd!.mustDocker(['stop', '-t', '1', 'c-h2']);
        await waitFor(async () => (await ps(h1)).find((c) => c.name === 'c-h2')?.state === 'stopped', { timeoutMs: 20_000, what: 'c-h2 seen stopped' });
        await waitFor(async () => (await h1.weftJson<any>(['dns', 'lookup', 'c-h2', '--json'])).rcode === 'NXDOMAIN', { timeoutMs: 20_000, what: 'a stopped container to leave the DNS' });
        await h2.dockerd!.mustDocker(['start', 'c-h2']);
        expect(await addressOf(h1, 'c-h2', 'c-h2 running again')).toBe(before);
        await waitFor(() => pingFrom(h1, 'c-h1', before), { timeoutMs: 20_000, what: 'c-h2 reachable after its restart' });
      });

      test('kill -9 a peer: its containers keep working, their addresses are not reused; rmpeer after it is gone', async () => {
        const [h1, h2, h3] = mesh().hosts as [Host, Host, Host];
        const onH3 = await addressOf(h1, 'c-h3');
        const h3Status = await h3.weftJson<any>(['status', '--json']);
        // rmpeer is refused while the peer is alive.
        const refused = await h1.weft(['rmpeer', h3Status.name]);
        expect(refused.code).toBe(1);
        expect(refused.stderr).toMatch(/alive/);
        await h3.kill();
        // Containers on h3 keep their network while their peer is down.
        await waitFor(() => pingFrom(h1, 'c-h1', onH3), { timeoutMs: 10_000, what: 'c-h1 to still reach c-h3 with h3 peer down' });
        await waitFor(async () => (await h1.weftJson<any[]>(['peers', '--json'])).find((p) => p.name === 'h3')?.state === 'dead', { timeoutMs: 30_000, what: 'h3 seen dead' });
        // Its containers leave the DNS answers of the other peers.
        await waitFor(async () => (await h1.weftJson<any>(['dns', 'lookup', 'c-h3', '--json'])).rcode === 'NXDOMAIN', { timeoutMs: 20_000, what: 'c-h3 to leave the DNS on h1' });
        // New containers elsewhere never get an address h3 may still hold.
        const h3Addrs = new Set((await ps(h1)).filter((c) => c.host === 'h3').map((c) => c.address));
        for (let i = 0; i < 5; i++) await runContainer(h1, `after-kill-${i}`);
        for (let i = 0; i < 5; i++) expect(h3Addrs.has(await addressOf(h1, `after-kill-${i}`))).toBe(false);
        // The peer comes back: its containers are still attached, with the same addresses.
        await h3.restart();
        await waitFor(async () => (await ps(h3)).some((c) => c.name === 'c-h3' && c.address === onH3), { timeoutMs: 30_000, what: 'c-h3 still attached after restart' });
        await waitFor(() => pingFrom(h2, 'c-h2', onH3), { timeoutMs: 20_000, what: 'c-h2 to reach c-h3 after its peer restarted' });
        await waitFor(async () => (await h1.weftJson<any>(['dns', 'lookup', 'c-h3', '--json'])).rcode === 'NOERROR', { timeoutMs: 20_000, what: 'c-h3 back in the DNS on h1' });
        // Gone for good: rmpeer takes its space.
        await h3.dockerd!.removeAllContainers();
        await h3.kill();
        await waitFor(async () => (await h1.weftJson<any[]>(['peers', '--json'])).find((p) => p.name === 'h3')?.state === 'dead', { timeoutMs: 30_000, what: 'h3 seen dead again' });
        const r = await h1.weft(['rmpeer', 'h3']);
        expect(r.code, r.stderr).toBe(0);
        await waitFor(async () => (await h1.weftJson<any>(['status', 'ipam', '--json'])).unreachable === 0, { timeoutMs: 30_000, what: 'h3 space taken over' });
      });
    }
  });
}
