// End-to-end: the weft mesh on 4 hosts (network namespaces h1..h4 on one switch).
// h1..h3 share a password; h4 has another. Tests run in order and build on each other:
// join, refusal, remote CLI, failure detection (kill -9 and a silent cut), restart under the
// same identity, a partition that heals with its state converged.
import { describe, expect, test } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { useHarness } from '../harness/vitest.ts';
import { waitFor, type Host } from '../harness/harness.ts';

const PASSWORD = 'e2e-mesh-password-7f3a';
const OTHER_PASSWORD = 'not-the-mesh-password-91c2';

interface PeerJson { id: string; name: string; address: string; state: string }
interface StatusJson { id: string; name: string; peers: { alive: number; suspect: number; dead: number } }

const peers = (h: Host) => h.weftJson<PeerJson[]>(['peers', '--json']);
const status = (h: Host) => h.weftJson<StatusJson>(['status', '--json']);
const stateOf = async (h: Host, name: string) => (await peers(h)).find((p) => p.name === name)?.state;

function allLogs(h: Host): string {
  let text = '';
  for (const f of ['peer.log', 'peer.out', 'peer.err']) {
    try { text += readFileSync(join(h.dir, f), 'utf8'); } catch { /* absent */ }
  }
  return text;
}

describe('a mesh of four hosts', () => {
  const mesh = useHarness({ hosts: 4, name: 'e2e-mesh' });

  test('peers given one bootstrap address learn each other and report the mesh', async () => {
    const [h1, h2, h3] = mesh().hosts as [Host, Host, Host];
    await h1.startPeer({ password: PASSWORD });
    await h2.startPeer({ password: PASSWORD, peers: [h1.address] });
    await h3.startPeer({ password: PASSWORD, peers: [h1.address] });
    for (const h of [h1, h2, h3]) {
      await waitFor(async () => (await status(h)).peers.alive === 2, { what: `${h.name} to see 2 alive peers` });
    }
    // h2 and h3 only knew h1: they must have connected to each other through what h1 told them.
    const fromH2 = await peers(h2);
    expect(fromH2.map((p) => p.name).sort()).toEqual(['h1', 'h3']);
    const s3 = await status(h3);
    expect(s3.name).toBe('h3');
    expect(fromH2.find((p) => p.name === 'h3')).toMatchObject({ id: s3.id, address: `${h3.ip}:6783`, state: 'alive' });
    expect(s3.peers).toMatchObject({ alive: 2, suspect: 0, dead: 0 });
    // Each host's Prometheus endpoint, on its own loopback.
    const scrape = await h3.exec(['busybox', 'wget', '-q', '-O', '-', 'http://127.0.0.1:6782/metrics']);
    expect(scrape.code, scrape.stderr).toBe(0);
    expect(scrape.stdout).toMatch(/^weft_peers\{state="alive"\} 2$/m);
    expect(scrape.stdout).toMatch(/^weft_connections [1-9]/m);
    expect(scrape.stdout).toMatch(/^weft_gossip_messages_received_total\{channel="control"\} [1-9]/m);
  });

  test('a peer with the wrong password is refused, and both sides say so in one line', async () => {
    const [h1, , , h4] = mesh().hosts as [Host, Host, Host, Host];
    await h4.startPeer({ password: OTHER_PASSWORD, peers: [h1.address] });
    await waitFor(() => /cannot join \S+: wrong mesh password/.test(allLogs(h4)), { what: 'h4 to log the refusal' });
    await waitFor(() => new RegExp(`refused a connection from ${h4.ip.replace(/\./g, '\\.')}: wrong mesh password`).test(allLogs(h1)), { what: 'h1 to log the refusal' });
    expect((await peers(h1)).map((p) => p.name)).not.toContain('h4');
    expect(await peers(h4)).toEqual([]);
    for (const h of mesh().hosts) {
      const logs = allLogs(h);
      expect(logs).not.toContain(PASSWORD);
      expect(logs).not.toContain(OTHER_PASSWORD);
    }
    await h4.stop();
  });

  test('the CLI talks to a remote peer over the mesh with the password, and not without it', async () => {
    const [h1, h2] = mesh().hosts as [Host, Host];
    const good = join(h1.dir, 'remote-pw');
    const bad = join(h1.dir, 'remote-bad-pw');
    (await import('node:fs')).writeFileSync(good, PASSWORD + '\n');
    (await import('node:fs')).writeFileSync(bad, OTHER_PASSWORD + '\n');
    const weftBin = join(import.meta.dirname, '../../bin/weft');
    const r = await h1.exec([weftBin, '--peer', h2.ip, '--password-file', good, 'status', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ name: 'h2', id: (await status(h2)).id });
    const refused = await h1.exec([weftBin, '--peer', h2.ip, '--password-file', bad, 'status']);
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim()).toMatch(/^weft: cannot reach \S+: the peer refused our mesh password/);
  });

  test('an API token made on one peer reaches the API of another, without the mesh secret, until revoked', async () => {
    const [h1, h2] = mesh().hosts as [Host, Host];
    const { token, id } = await h1.weftJson<{ token: string; id: string }>(['token', 'create', '--api', '--name', 'ci', '--json']);
    const tokenFile = join(h1.dir, 'api-token');
    writeFileSync(tokenFile, token + '\n');
    const weftBin = join(import.meta.dirname, '../../bin/weft');
    const remote = (args: string[]) => h1.exec([weftBin, '--peer', h2.ip, '--api-token-file', tokenFile, ...args]);
    // The record replicates to h2, which then admits the token.
    await waitFor(async () => (await remote(['status', '--json'])).code === 0, { what: 'h2 to accept the token' });
    expect(JSON.parse((await remote(['peers', '--json'])).stdout).length).toBe(2);
    // A token is for the API only: it cannot mint a join token (which carries the mesh key).
    const mint = await remote(['token', 'create']);
    expect(mint.code).toBe(1);
    expect(mint.stderr).toMatch(/"token.join" is not allowed for an API token: a join token carries the mesh secret/);
    const mintApi = await remote(['token', 'create', '--api']);
    expect(mintApi.stderr).toMatch(/"token.create" is not allowed for an API token of scope operator/);
    expect((await h2.weft(['token', 'revoke', id])).code).toBe(0);
    await waitFor(async () => /refused our API token/.test((await remote(['status'])).stderr), { what: 'the revoked token to be refused' });
    const listed = await h1.weftJson<{ id: string; revoked: boolean }[]>(['token', 'ls', '--json']);
    await waitFor(async () => (await h1.weftJson<{ id: string; revoked: boolean }[]>(['token', 'ls', '--json'])).find((t) => t.id === id)?.revoked === true, { what: 'h1 to see the revocation' });
    expect(listed.some((t) => t.id === id)).toBe(true);
  });

  test('a peer killed with -9 is marked dead everywhere, and rejoins under its old identity', async () => {
    const [h1, h2, h3] = mesh().hosts as [Host, Host, Host];
    const id = (await status(h3)).id;
    await h3.kill();
    for (const h of [h1, h2]) await waitFor(async () => (await stateOf(h, 'h3')) === 'dead', { what: `${h.name} to mark h3 dead` });
    await h3.restart();
    for (const h of [h1, h2]) await waitFor(async () => (await stateOf(h, 'h3')) === 'alive', { what: `${h.name} to see h3 alive again` });
    expect((await status(h3)).id).toBe(id);
    const events = await h1.weftJson<{ type: string; peer?: { name: string } }[]>(['events', '--json']);
    const h3Events = events.filter((e) => e.peer?.name === 'h3').map((e) => e.type);
    expect(h3Events).toContain('dead');
    expect(h3Events).toContain('rejoined');
  });

  test('a write acknowledged just before a kill -9 is there after the restart', async () => {
    const [h1, h2] = mesh().hosts as [Host, Host];
    expect((await h2.weft(['kv', 'put', 'durable', 'acknowledged'])).code).toBe(0);
    await h2.kill();
    await h2.restart();
    await waitFor(async () => (await status(h2)).peers.alive === 2, { what: 'h2 to be back in the mesh' });
    const vals = await h2.weftJson<{ value: string }[]>(['kv', 'get', 'durable', '--json']);
    expect(vals.map((v) => v.value)).toEqual(['acknowledged']);
    await waitFor(async () => (await h1.weftJson<{ value: string }[]>(['kv', 'get', 'durable', '--json'])).length === 1, { what: 'h1 to hold it too' });
  });

  test('a host cut off the network (no FIN, no RST) is marked dead, and alive again once healed', async () => {
    const [h1, h2, h3] = mesh().hosts as [Host, Host, Host];
    const cutAt = Date.now();
    await h3.cut();
    try {
      for (const h of [h1, h2]) await waitFor(async () => (await stateOf(h, 'h3')) === 'dead', { what: `${h.name} to mark the cut h3 dead` });
      // h3 is alone: it sees the others dead, and stays up.
      await waitFor(async () => (await status(h3)).peers.dead === 2, { what: 'h3 to mark both others dead' });
      // And keeps that view for a while, so that it comes back with old verdicts about h1 and h2.
      const buriedAt = Date.now();
      await waitFor(async () => Date.now() - buriedAt >= 3_000 && (await status(h3)).peers.dead === 2, { what: 'h3 to hold both others dead for 3 s' });
    } finally {
      await h3.heal();
    }
    for (const h of [h1, h2]) await waitFor(async () => (await stateOf(h, 'h3')) === 'alive', { what: `${h.name} to see h3 back` });
    await waitFor(async () => (await status(h3)).peers.alive === 2, { what: 'h3 to see both others alive again' });
    // What h3 sent during the cut may still be on its way (its connections retransmit with
    // backoff): give it time to arrive.
    const backAt = Date.now();
    await waitFor(async () => Date.now() - backAt >= 3_000 && (await status(h1)).peers.alive === 2, { what: 'h1 to see both others alive 3 s after' });
    // h1 and h2 never stopped hearing each other: h3's verdicts about them are old news, and
    // neither may believe them, not even for a moment.
    for (const [h, other] of [[h1, 'h2'], [h2, 'h1']] as const) {
      const events = await h.weftJson<{ at: string; type: string; peer?: { name: string } }[]>(['events', '--json']);
      const seen = events.filter((e) => e.peer?.name === other && Date.parse(e.at) >= cutAt).map((e) => `${e.at} ${e.type}`);
      expect(seen.filter((e) => e.endsWith(' dead')), `${h.name}'s events about ${other} since the cut: ${seen.join(', ')}`).toEqual([]);
    }
  });

  test('writes on both sides of a partition converge once it heals', async () => {
    const [h1, h2, h3] = mesh().hosts as [Host, Host, Host];
    await mesh().partition([h1], [h2, h3]);
    try {
      await waitFor(async () => (await stateOf(h1, 'h2')) === 'dead', { what: 'h1 to lose h2' });
      expect((await h1.weft(['kv', 'put', 'side', 'one'])).code).toBe(0);
      expect((await h2.weft(['kv', 'put', 'side', 'two'])).code).toBe(0);
      expect((await h3.weft(['kv', 'rm', 'missing'])).code).toBe(0);
    } finally {
      await mesh().healPartition();
    }
    for (const h of [h1, h2, h3]) {
      await waitFor(async () => {
        const vals = await h.weftJson<{ value: string }[]>(['kv', 'get', 'side', '--json']);
        return vals.map((v) => v.value).sort().join(',') === 'one,two';
      }, { what: `${h.name} to hold both sides' writes` });
    }
  });
});
