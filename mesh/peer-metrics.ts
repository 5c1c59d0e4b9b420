// The mesh's own figures on the peer's /metrics (Prometheus text): connections, members by
// state, traffic per channel, refusals, IPAM and replica sizes. Subsystems composed beside the
// peer (DNS, the API server) register theirs where they are composed.
import type { ChannelStats } from './transport/channel.ts';
import type { IpamShell } from './ipam/shell.ts';
import type { Member } from './membership/member.ts';
import type { Metrics } from './metrics.ts';
import type { ReplicaShell } from './replication/shell.ts';

export interface PeerMetricSources {
  connections(): number;
  members(): Member[];
  channels: { control(): ChannelStats; sync(): ChannelStats; ipam(): ChannelStats };
  rejectedAdmissions(): number;
  ipam: Pick<IpamShell, 'status'>;
  replica: Pick<ReplicaShell, 'size' | 'refused'>;
}

export function registerPeerMetrics(m: Metrics, s: PeerMetricSources): void {
  m.gauge('weft_connections', 'Open libp2p connections.', () => s.connections());
  m.gauge('weft_peers', 'Known peers by state (this peer excluded).', () => {
    const counts: Record<string, number> = { alive: 0, suspect: 0, dead: 0, left: 0 };
    for (const p of s.members()) counts[p.state] = (counts[p.state] ?? 0) + 1;
    return Object.entries(counts).map(([state, value]) => ({ labels: { state }, value }));
  });
  const perChannel = (pick: (c: ChannelStats) => number) => () => [
    { labels: { channel: 'control' }, value: pick(s.channels.control()) },
    { labels: { channel: 'sync' }, value: pick(s.channels.sync()) },
    { labels: { channel: 'ipam' }, value: pick(s.channels.ipam()) },
  ];
  m.counter('weft_gossip_messages_received_total', 'Mesh messages received.', perChannel((c) => c.messagesIn));
  m.counter('weft_gossip_messages_sent_total', 'Mesh messages sent.', perChannel((c) => c.messagesOut));
  m.counter('weft_gossip_bytes_received_total', 'Mesh bytes received.', perChannel((c) => c.bytesIn));
  m.counter('weft_gossip_bytes_sent_total', 'Mesh bytes sent.', perChannel((c) => c.bytesOut));
  m.counter('weft_gossip_messages_dropped_total', 'Mesh messages dropped on a full queue.', perChannel((c) => c.dropped));
  m.counter('weft_gossip_messages_rejected_total', 'Malformed, oversized or forged messages rejected.', () => [
    { labels: { channel: 'control' }, value: s.channels.control().rejected },
    { labels: { channel: 'sync' }, value: s.channels.sync().rejected },
  ]);
  m.counter('weft_admission_rejected_total', 'Connections refused by mesh admission (wrong password, not a weft peer).', () => s.rejectedAdmissions());
  m.gauge('weft_ipam_addresses', 'Container addresses by state, as this peer sees the ring.', () => {
    const st = s.ipam.status();
    return [
      { labels: { state: 'owned' }, value: st.owned },
      { labels: { state: 'free' }, value: st.free },
      { labels: { state: 'in_use' }, value: st.inUse },
      { labels: { state: 'unreachable' }, value: st.unreachable },
    ];
  });
  m.gauge('weft_ipam_pending_allocations', 'Allocations waiting for address space.', () => s.ipam.status().pending);
  m.gauge('weft_replica_entries', 'Replicated entries held (tombstones included).', () => s.replica.size());
  m.counter('weft_replica_refused_total', 'Entries of other owners not stored because their owner is past its quota.', () => s.replica.refused());
}
