// Asks dockerd which endpoints its networks of one driver still have, so a restarted plugin can
// tell its stored endpoints that Docker deleted while the plugin was down (their calls failed)
// from the ones containers still use. Drives dockerode; decides nothing.
import type Docker from 'dockerode';

/** dockerd answers these from memory in milliseconds; it may be slow while it is itself
 *  retrying a call to the plugin that is starting (it retries for ~15 s), and the census is
 *  only worth having soon after start. */
export const CENSUS_TIMEOUT_MS = 20_000;

/** The part of dockerode the census uses. */
export type DockerNetworks = Pick<Docker, 'listNetworks' | 'getNetwork'>;

/** Endpoint ids of every container on a network whose driver is `driver`, on this dockerd. */
export async function dockerEndpointIds(docker: DockerNetworks, driver: string, timeoutMs = CENSUS_TIMEOUT_MS): Promise<Set<string>> {
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      abort.abort();
      reject(new Error(`dockerd did not list its networks within ${timeoutMs / 1000} s`));
    }, timeoutMs);
  });
  const census = async (): Promise<Set<string>> => {
    // The list leaves Containers out (API >= 1.28); inspecting each network gives them.
    const nets = await docker.listNetworks({ filters: { driver: [driver] }, abortSignal: abort.signal });
    const ids = new Set<string>();
    for (const n of nets) {
      if (n.Driver !== driver) continue; // the filter matches by prefix on some versions
      const full = await docker.getNetwork(n.Id).inspect();
      for (const c of Object.values(full.Containers ?? {})) if (typeof c?.EndpointID === 'string' && c.EndpointID !== '') ids.add(c.EndpointID);
    }
    return ids;
  };
  try {
    return await Promise.race([census(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
