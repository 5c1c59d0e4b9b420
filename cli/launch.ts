// `weft launch`: a peer in the foreground, with its DNS, API and metrics, until SIGINT or
// SIGTERM. The options and the configs they make are in launch-options.ts.

import { join } from 'node:path';
import { ApiServer } from '../mesh/api/server.ts';
import { MethodTable } from '../mesh/api/table.ts';
import { errorText, logger, setLogLevel } from '../mesh/log.ts';
import { Peer } from '../mesh/peer.ts';
import { registerPeerMethods } from '../mesh/api/peer-methods.ts';
import { BRIDGE_DNS_PORT, DnsService } from '../dns/service.ts';
import { registerDnsMethods } from '../dns/api.ts';
import { Managers } from '../scheduler/manager/managers.ts';
import { registerManagerMethods } from '../scheduler/manager/api.ts';
import { registerServiceMethods } from '../scheduler/service/api.ts';
import { registerLogMethods } from '../scheduler/service/logs.ts';
import { startScheduler } from './scheduler.ts';
import { startProvisioner } from './provisioner.ts';
import { startInstallServer } from '../provisioner/byon/install-server.ts';
import { CliError } from './error.ts';
import { launchConfig, type DnsLaunchConfig, type LaunchOptions } from './launch-options.ts';

/** The DNS server's counters on the peer's /metrics. */
function registerDnsMetrics(peer: Peer, dns: DnsService): void {
  const m = peer.metrics;
  m.counter('weft_dns_queries_total', 'DNS queries received, by transport.', () => {
    const q = dns.stats().queries;
    return [{ labels: { transport: 'udp' }, value: q.udp }, { labels: { transport: 'tcp' }, value: q.tcp }];
  });
  m.counter('weft_dns_responses_total', 'DNS responses sent, by RCODE.', () =>
    Object.entries(dns.stats().responses).map(([rcode, value]) => ({ labels: { rcode }, value })));
  m.counter('weft_dns_forwarded_total', 'Queries forwarded upstream.', () => dns.stats().forwarded);
  m.counter('weft_dns_cache_hits_total', 'Upstream answers served from the cache.', () => dns.stats().cacheHits);
  m.counter('weft_dns_upstream_failures_total', 'Forwarded queries answered SERVFAIL because no upstream answered.', () => dns.stats().upstreamFailures);
  m.gauge('weft_dns_records', 'Names answered from the registry.', () => dns.stats().records);
  m.counter('weft_dns_dropped_total', 'DNS messages dropped unanswered (malformed beyond a reply, or from source port 0).', () => dns.stats().dropped);
  m.gauge('weft_dns_tcp_unsent_bytes', 'DNS answers over TCP waiting for their clients to read them.', () => dns.stats().tcpUnsentBytes);
}

/** The control plane's figures on the peer's /metrics. */
function registerManagerMetrics(peer: Peer, managers: Managers): void {
  const m = peer.metrics;
  const s = () => managers.status();
  m.gauge('weft_raft_term', 'The Raft term this peer is in.', () => s().term);
  m.gauge('weft_raft_commit_index', 'The highest log index known committed.', () => s().commit);
  m.gauge('weft_raft_applied_index', 'The highest log index applied to desired state here.', () => s().applied);
  m.gauge('weft_raft_is_leader', '1 while this peer leads the managers.', () => (s().role === 'leader' ? 1 : 0));
  m.counter('weft_raft_leader_changes_total', 'Leaders this peer has seen elected.', () => managers.leaderChanges);
  m.counter('weft_raft_apply_seconds_sum', 'Time from proposal to apply of writes proposed on this peer (the leader), summed.', () => managers.raft.applyLatency.sumSeconds);
  m.counter('weft_raft_apply_seconds_count', 'Writes proposed on this peer and applied.', () => managers.raft.applyLatency.count);
  m.gauge('weft_raft_snapshot_bytes', 'Size of the last Raft snapshot made or installed here.', () => managers.raft.snapshotBytes);
  m.counter('weft_raft_rejected_messages_total', 'Manager messages refused as malformed or forged.', () => managers.raft.rejected);
}

/** The mesh DNS: on --dns-listen at once, and on the bridge's gateway once the data plane is up.
 *  Composed here, not in the peer: dns/ builds on mesh/, never the reverse. */
async function startDns(peer: Peer, config: DnsLaunchConfig): Promise<DnsService | undefined> {
  const listen = config.listen ? [config.listen] : [];
  if (listen.length === 0 && !peer.network) return undefined;
  const dns = await DnsService.start({
    view: peer.view(), listen: listen.length ? listen : [{ host: peer.network!.dnsAddress, port: BRIDGE_DNS_PORT }],
    ttl: config.ttl, ...(config.upstreams ? { upstreams: config.upstreams } : {}),
    reverse: [peer.config.ipallocRange], log: logger('dns'),
  });
  if (listen.length && peer.network) await dns.addListener({ host: peer.network.dnsAddress, port: BRIDGE_DNS_PORT });
  // Other hosts' containers list this peer's DNS second, on an overlay address of its own, so
  // they keep resolving while their own host's peer restarts.
  peer.network?.offerDns(async (addr) => {
    await dns.addListener({ host: addr, port: BRIDGE_DNS_PORT });
  });
  return dns;
}

/** Runs a peer in the foreground until SIGINT or SIGTERM. */
export async function launch(o: LaunchOptions): Promise<void> {
  // The token may be on the command line: replace the process title (what ps shows) at once.
  process.title = o.name ? `weft launch ${o.name}` : 'weft launch';
  const config = launchConfig(o);
  setLogLevel(config.logLevel);
  const log = logger('launch');
  // Signals are ours from the first moment: one that arrives while the peer is still starting
  // (a supervisor giving up, an operator's ^C) is acted on once it has started, so the stop is
  // the same clean one as later, never Node's default of dying mid-start.
  let stop: ((signal: string) => Promise<void>) | undefined;
  let early: string | undefined;
  let stopping = false;
  const onSignal = (signal: string) => {
    if (stopping) {
      log.warn('second signal: exiting at once', { signal });
      process.exit(1);
    }
    if (!stop) {
      if (early === undefined) log.info('signal while starting: stopping once started', { signal });
      early ??= signal;
      return;
    }
    stopping = true;
    stop(signal).catch((err) => {
      log.error('could not stop cleanly', { err: errorText(err) });
      process.exit(1);
    });
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  const peer = await Peer.start(config.peer);
  // Every handler on the network path catches its own failures (the hostile-input battery
  // checks it). A promise that still rejects unhandled is a bug, and ending the peer for it
  // would take the host's DNS and control plane down on whatever input reached it: it is
  // logged loudly and counted instead. A synchronous throw still ends the process, since the
  // state it left half-changed cannot be trusted.
  let unhandled = 0;
  process.on('unhandledRejection', (reason) => {
    unhandled++;
    log.error('unhandled promise rejection (a bug in weft: please report it)', { err: errorText(reason) });
  });
  peer.metrics.counter('weft_unhandled_rejections_total', 'Promise rejections no handler caught (bugs; the peer keeps running).', () => unhandled);
  let dns: DnsService | undefined;
  try {
    dns = await startDns(peer, config.dns);
  } catch (err) {
    await peer.stop();
    throw new CliError(`cannot start the DNS server: ${errorText(err)} (choose another --dns-listen, or --dns-listen off)`);
  }
  if (dns) registerDnsMetrics(peer, dns);
  let managers: Managers;
  try {
    managers = await Managers.start({
      node: peer.node, store: peer.store, view: peer.view(), accept: (conn) => peer.tokens.isMember(conn),
      role: config.peer.role, managers: config.manager.managers, graceMs: config.manager.graceMs,
      mayFound: config.peer.peers.length === 0, log: logger('manager'),
      onFatal: () => {
        log.error('the control plane cannot write its state: exiting');
        process.exit(1);
      },
    });
  } catch (err) {
    await dns?.stop();
    await peer.stop();
    throw new CliError(`cannot start the control plane: ${errorText(err)}`);
  }
  registerManagerMetrics(peer, managers);
  managers.raft.onEvent((e) => {
    const id = 'peer' in e ? e.peer : e.leader;
    const who = id === null ? undefined : { id, ...(managers.nameOf(id) ?? { name: '' }) };
    peer.events.add({ type: e.type, ...(who ? { peer: who } : {}), ...('term' in e ? { detail: `term ${e.term}` } : {}) });
  });
  const methods = new MethodTable();
  registerPeerMethods(methods, peer, () => {
    const s = managers.status();
    return { role: s.role, leader: s.leader, term: s.term, commit: s.commit, applied: s.applied };
  });
  registerManagerMethods(methods, managers);
  const scheduler = await startScheduler(peer, managers, logger('scheduler'), config.peer.dataplane, config.peer.dockerHost);
  registerServiceMethods(methods, managers.raft, peer.view(), scheduler.reconciler);
  registerLogMethods(methods, managers.raft, peer.view().self.id, scheduler.logs);
  registerDnsMethods(methods, () => dns);
  const install = startInstallServer(peer, methods, logger('install'));
  const provisioner = startProvisioner(peer, managers, methods, logger('provisioner'), scheduler.reconciler, install);
  const api = new ApiServer(methods.handler((caller) => peer.tokens.accessOf(caller)), logger('api'));
  await api.listenMesh(peer.node, (conn) => peer.tokens.credentialOf(conn));
  peer.metrics.gauge('weft_api_requests_in_flight', 'API requests being served or waiting for their client to read the reply.', () => api.stats().requestsInFlight);
  peer.metrics.gauge('weft_api_reply_bytes_queued', 'API reply bytes waiting for clients to read them.', () => api.stats().bytesQueued);
  try {
    await api.listenUnix(join(config.peer.dataDir, 'weft.sock'));
  } catch (err) {
    await dns?.stop();
    await peer.stop();
    throw err;
  }
  stop = async (signal: string) => {
    log.info('stopping', { signal });
    // First, while nothing else is being torn down: writes wait for the next leader.
    await managers.handOver();
    provisioner.stop();
    await install.stop();
    scheduler.stop();
    await managers.stop();
    await api.close();
    await dns?.stop();
    await peer.stop();
    process.exit(0);
  };
  if (early !== undefined) onSignal(early);
}

