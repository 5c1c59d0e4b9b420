// The stack file reader (scheduler/stack/): Tutum's stackfile and Docker Compose files read into
// ServiceSpecs with defaults filled; every error names the file, the service and the key; keys
// weft does not support are reported once; a hostile file is one error, quickly, and never a
// throw. Compose files docker-compose 1.29 accepts (test/fixtures/compose/) read as expected,
// both as written and as `docker-compose config` normalises them.

import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import type { ServiceSpec } from '../../scheduler/service/spec.ts';
import { readStackFile } from '../../scheduler/stack/file.ts';
import { MAX_DOCUMENT_BYTES } from '../../scheduler/stack/limits.ts';
import { readStack, type StackResult } from '../../scheduler/stack/read.ts';
import { serviceSpecProblem } from '../../scheduler/service/schema.ts';

const FILE = 'shop.yml';
const read = (text: string, variables: Record<string, string> = {}): StackResult => readStack(text, { file: FILE, stack: 'shop', variables });

function services(text: string, variables: Record<string, string> = {}): ServiceSpec[] {
  const r = read(text, variables);
  if (!r.ok) throw new Error(r.errors.join('\n'));
  return r.services;
}
function warnings(text: string): string[] {
  const r = read(text);
  if (!r.ok) throw new Error(r.errors.join('\n'));
  return r.warnings;
}
function errors(text: string): string[] {
  const r = read(text);
  if (r.ok) throw new Error(`accepted: ${JSON.stringify(r.services)}`);
  return r.errors;
}

/** Every default, as a user who writes only `image:` gets them. */
function defaults(name: string, image: string): ServiceSpec {
  return {
    name, stack: 'shop', image, environment: {}, ports: [], targetNumContainers: 1, tags: [], deploymentStrategy: 'EMPTIEST_NODE',
    autorestart: 'OFF', autodestroy: 'OFF', sequentialDeployment: false, links: [], memoryBytes: 0, cpuShares: 0, labels: {}, volumes: [],
    rescheduleAfterSeconds: 30, update: { parallelism: 1, delayMs: 0, onFailure: 'pause' },
  };
}

describe('Tutum stackfile', () => {
  test('a service with only an image gets every default', () => {
    expect(services('web:\n  image: nginx\n')).toEqual([defaults('web', 'nginx')]);
  });

  test('every supported key is read', () => {
    const [web] = services(`
web:
  image: example/web:3
  command: gunicorn -b "0.0.0.0:80" app
  entrypoint: [/entry.sh]
  environment:
    - DEBUG=1
    - EMPTY=
    - SECRET
  ports: ["8080:80", "53:53/udp", "9000-9001:9000-9001"]
  expose: ["7000", 7001/udp]
  target_num_containers: 3
  tags: [web, zone=a]
  deployment_strategy: high_availability
  autorestart: ON_FAILURE
  autodestroy: on-success
  sequential_deployment: true
  links: [db, "cache:redis", "other.api:api"]
  mem_limit: 512m
  cpu_shares: 512
  labels: [com.example.team=shop, com.example.flag]
  volumes: ["data:/var/lib/data", "conf:/etc/conf:ro"]
  reschedule_after: 2m
  healthcheck: {test: curl -f localhost, interval: 10s}
db: {image: postgres, restart: always}
cache: {image: redis}
`, { SECRET: 's3' });
    expect(web).toEqual({
      ...defaults('web', 'example/web:3'),
      command: ['gunicorn', '-b', '0.0.0.0:80', 'app'],
      entrypoint: ['/entry.sh'],
      environment: { DEBUG: '1', EMPTY: '', SECRET: 's3' },
      ports: [
        { container: 53, protocol: 'udp', host: 53 }, { container: 80, protocol: 'tcp', host: 8080 },
        { container: 9000, protocol: 'tcp', host: 9000 }, { container: 9001, protocol: 'tcp', host: 9001 },
        { container: 7000, protocol: 'tcp' }, { container: 7001, protocol: 'udp' },
      ],
      targetNumContainers: 3, tags: ['web', 'zone=a'], deploymentStrategy: 'HIGH_AVAILABILITY', autorestart: 'ON_FAILURE', autodestroy: 'ON_SUCCESS',
      sequentialDeployment: true,
      links: [{ service: 'db', alias: 'db' }, { service: 'cache', alias: 'redis' }, { service: 'other.api', alias: 'api' }],
      memoryBytes: 512 * 1024 ** 2, cpuShares: 512, labels: { 'com.example.team': 'shop', 'com.example.flag': '' },
      volumes: ['data:/var/lib/data', 'conf:/etc/conf:ro'], rescheduleAfterSeconds: 120,
      healthcheck: { test: ['CMD-SHELL', 'curl -f localhost'], intervalMs: 10_000, timeoutMs: 30_000, retries: 3, startPeriodMs: 0 },
    });
  });

  test("Tutum's, Docker Cloud's and YAML 1.1's spellings of the same value agree", () => {
    const s = services('a: {image: x, autodestroy: no, restart: no}\nb: {image: x, autodestroy: ALWAYS, autorestart: ALWAYS, deployment_strategy: every_node}\n');
    expect(s.map((x) => [x.autodestroy, x.autorestart])).toEqual([['OFF', 'OFF'], ['ALWAYS', 'ALWAYS']]);
    expect(s[1]?.deploymentStrategy).toBe('EVERY_NODE');
  });

  test('link cycles and links across stacks are allowed', () => {
    expect(services('web: {image: x, links: [db]}\ndb: {image: y, links: [web, "billing.api"]}\n')).toHaveLength(2);
  });

  test('a port both exposed and published is kept once, published', () => {
    expect(services('web: {image: x, ports: ["8080:80"], expose: ["80", "80"]}\n')[0]?.ports).toEqual([{ container: 80, protocol: 'tcp', host: 8080 }]);
  });
});

describe('Compose file', () => {
  test('every supported key is read, version is ignored silently', () => {
    const r = read(readFileSync(fixture('shop.yml'), 'utf8'), { B: 'bee' });
    expect(r.ok && r.form).toBe('compose');
    expect(r.ok && r.services).toEqual(SHOP);
    expect(r.ok && r.warnings.join('\n')).not.toMatch(/version/);
  });

  test('anchors and merge keys, as Compose files share settings', () => {
    expect(services(readFileSync(fixture('anchors.yml'), 'utf8'))).toEqual(ANCHORS);
  });

  test('variables are substituted as docker-compose does', () => {
    const s = services('services:\n  web:\n    image: "nginx:${TAG:-1.25}"\n    environment: {A: "$$HOME", B: "${B}"}\n', { B: 'b' });
    expect(s[0]?.image).toBe('nginx:1.25');
    expect(s[0]?.environment).toEqual({ A: '$HOME', B: 'b' });
    expect(warnings('services:\n  web: {image: "nginx:$TAG"}\n')).toEqual([`weft: stackfile ${FILE}: variable "TAG" is not set; a blank string is used (as docker-compose does)`]);
  });

  test('deploy.restart_policy wins over restart, with a warning', () => {
    const r = read('services:\n  w: {image: x, restart: always, deploy: {restart_policy: {condition: on-failure}}}\n');
    expect(r.ok && r.services[0]?.autorestart).toBe('ON_FAILURE');
    expect(r.ok && r.warnings[0]).toMatch(/deploy.restart_policy.condition says ON_FAILURE and restart says ALWAYS/);
  });

  test('placement constraints become tags', () => {
    const s = services('services:\n  w:\n    image: x\n    deploy: {placement: {constraints: ["node.labels.zone == a", engine.labels.ssd==true, node.role==manager, node.hostname==h1, node.platform.arch==x86_64, node.platform.os==linux]}}\n');
    expect(s[0]?.tags).toEqual(['zone=a', 'ssd=true', 'role=manager', 'hostname=h1', 'arch=x86_64']);
  });
});

describe('ignored keys', () => {
  test('each unsupported key is reported once, naming its services; x- keys pass silently', () => {
    const w = warnings('x-common: &c {image: x}\nweb: {image: x, roles: [global], privileged: true, x-note: hi}\ndb: {image: y, privileged: true}\n');
    expect(w).toEqual([
      `weft: stackfile ${FILE}: roles is not supported by weft and is ignored (service "web")`,
      `weft: stackfile ${FILE}: privileged is not supported by weft and is ignored (services "web", "db")`,
    ]);
  });

  test('in a Compose file, at every level', () => {
    const w = warnings('version: "3"\nnetworks: {a: {}}\nvolumes: {d: {driver: local}}\nservices:\n  w: {image: x, build: ., deploy: {placement: {preferences: []}, update_config: {order: start-first}}}\n');
    expect(w.map((x) => x.replace(`weft: stackfile ${FILE}: `, '')).sort()).toEqual([
      'networks is not supported by weft and is ignored', 'volumes.driver is not supported by weft and is ignored',
      'build is not supported by weft and is ignored (service "w")', 'deploy.placement.preferences is not supported by weft and is ignored (service "w")',
      'deploy.update_config.order is not supported by weft and is ignored (service "w")',
    ].sort());
  });
});

describe('errors name the file, the service and the key', () => {
  const P = `weft: stackfile ${FILE}: `;
  const S = (svc: string): string => `${P}service "${svc}": `;
  test.each([
    ['web: {image: x, deployment_strategy: FASTEST}', `${S('web')}deployment_strategy "FASTEST" is not one of EMPTIEST_NODE, HIGH_AVAILABILITY, EVERY_NODE`],
    ['web: {image: x, autorestart: sometimes}', `${S('web')}autorestart "sometimes" is not one of OFF, ON_FAILURE, ALWAYS`],
    ['web: {image: x, autodestroy: 3}', `${S('web')}autodestroy 3 is not one of OFF, ON_SUCCESS, ALWAYS`],
    ['web: {image: x, target_num_containers: 1001}', `${S('web')}target_num_containers 1001 is not a whole number from 0 to 1000`],
    ['web: {image: x, target_num_containers: -1}', `${S('web')}target_num_containers -1 is not a whole number from 0 to 1000`],
    ['web: {image: x, sequential_deployment: maybe}', `${S('web')}sequential_deployment "maybe" is not true or false`],
    ['web: {ports: ["80:80"]}', `${S('web')}image is missing; every service needs one (weft does not build images)`],
    ['web: {image: [a]}', `${S('web')}image a list is not a string`],
    ['Web_1: {image: x}', `${S('Web_1')}name is not a DNS label (lower-case letters, digits and -, starting and ending with a letter or digit)`],
    [`${'a'.repeat(59)}: {image: x}`, `${S('a'.repeat(59))}name is longer than 58 characters (a container is named <service>-<n>, one DNS label)`],
    ['web: {image: x, links: [db]}', `${S('web')}links "db" names service "db", which this stack does not have`],
    ['web: {image: x, links: ["a:b:c"]}', `${S('web')}links "a:b:c" is not a link like "db" or "db:database"`],
    ['web: {image: x, links: ["db:x", "db2:x"]}\ndb: {image: y}\ndb2: {image: y}', `${S('web')}links "db2:x" uses the alias "x" a second time`],
    ['web: {image: x, links: ["db:Bad_Alias"]}\ndb: {image: y}', `${S('web')}links "db:Bad_Alias" has alias "Bad_Alias", which is not a DNS label`],
    ['web: {image: x, ports: ["8080:80", "8080:81"]}', `${S('web')}ports "8080:81/tcp" publishes host port 8080/tcp a second time (already mapped to 80)`],
    ['web: {image: x, ports: ["http"]}', `${S('web')}ports "http" is not a port like "80", "8080:80" or "53/udp"`],
    ['web: {image: x, ports: ["127.0.0.1:80:80"]}', `${S('web')}ports "127.0.0.1:80:80" binds a host address; weft publishes a port on every address of the node, so give "HOST:CONTAINER"`],
    ['web: {image: x, ports: ["80/sctp"]}', `${S('web')}ports "80/sctp" has protocol "sctp"; weft supports tcp and udp`],
    ['web: {image: x, ports: ["0:80"]}', `${S('web')}ports "0:80" has a port outside 1..65535`],
    ['web: {image: x, expose: ["80:80"]}', `${S('web')}expose "80:80" has a host port; expose takes a container port only (use ports to publish)`],
    ['web: {image: x, environment: 3}', `${S('web')}environment 3 is not a list`],
    ['web: {image: x, labels: {weft.attach: "false"}}', `${S('web')}labels "weft.attach" is reserved: weft sets the weft.* labels of its containers itself`],
    ['web: {image: x, volumes: ["/srv:/data"]}', `${S('web')}volumes "/srv:/data" mounts a host path; weft supports named volumes only (a host path changes with the node a container runs on)`],
    ['web: {image: x, volumes: ["/data"]}', `${S('web')}volumes "/data" is an anonymous volume; weft supports named volumes only ("name:/data")`],
    ['web: {image: x, volumes: ["d:/data:z"]}', `${S('web')}volumes "d:/data:z" has mode "z"; weft supports ro and rw`],
    ['web: {image: x, healthcheck: {test: [curl]}}', `${S('web')}healthcheck.test "curl" does not start with CMD, CMD-SHELL or NONE followed by a command`],
    ['web: {image: x, healthcheck: {test: x, interval: 5 minutes}}', `${S('web')}healthcheck.interval "5 minutes" is not a duration like "30s" or "1m30s" (at most 24 h)`],
    ['web: {image: x, mem_limit: lots}', `${S('web')}mem_limit "lots" is not a memory size like "512m" or "1g" (at most 1 TiB)`],
    ['web: {image: x, cpu_shares: 1.5}', `${S('web')}cpu_shares 1.5 is not a whole number from 0 to 262144`],
    ['web: {image: x, tags: ["a,b"]}', `${S('web')}tags "a,b" is not a tag (1 to 128 characters, no commas or spaces)`],
    ['web: {image: x, command: "echo \'hi"}', `${S('web')}command "echo 'hi" has a quote that is not closed`],
    ['web: {image: x, restart: always, autorestart: OFF}', `${S('web')}autorestart says OFF but restart says ALWAYS`],
    ['web: {image: x, reschedule_after: forever}', `${S('web')}reschedule_after "forever" is not a whole number from 0 to 86400`],
    ['web: image', `${S('web')}definition "image" is not a map of keys (image, ports, ...)`],
    ['services:\n  w: {image: x, deploy: {placement: {constraints: ["node.labels.zone!=a"]}}}', `${S('w')}deploy.placement.constraints "node.labels.zone!=a" excludes nodes, which deploy tags cannot express; weft supports == constraints only`],
    ['services:\n  w: {image: x, deploy: {placement: {constraints: ["node.id==abc"]}}}', `${S('w')}deploy.placement.constraints "node.id==abc" constrains node.id, which weft does not support (node.labels.*, engine.labels.*, node.role, node.hostname, node.platform.*)`],
    ['services:\n  w: {image: x, deploy: {placement: {constraints: ["node.platform.os==windows"]}}}', `${S('w')}deploy.placement.constraints "node.platform.os==windows" can never be met: every weft node runs Linux`],
    ['services:\n  w: {image: x, deploy: {update_config: {failure_action: retry}}}', `${S('w')}deploy.update_config.failure_action "retry" is not one of pause, continue, rollback`],
    ['services:\n  w: {image: x, deploy: {update_config: {delay: soon}}}', `${S('w')}deploy.update_config.delay "soon" is not a duration like "10s" or "1m30s"`],
    ['services:\n  w: {image: x, deploy: {mode: global, replicas: 2}}', `${S('w')}deploy.replicas cannot be given with mode: global (one container on every node)`],
    ['services:\n  w: {image: x, deploy: {mode: swarm}}', `${S('w')}deploy.mode "swarm" is not one of replicated, global`],
    ['services:\n  w: {image: x, deploy: {resources: {limits: {cpus: lots}}}}', `${S('w')}deploy.resources.limits.cpus "lots" is not a number of CPUs like 0.5 or 2`],
    ['services:\n  w: {image: x, deploy: {restart_policy: {condition: sometimes}}}', `${S('w')}deploy.restart_policy.condition "sometimes" is not one of OFF, ON_FAILURE, ALWAYS`],
    ['services:\n  w: {image: x, depends_on: [db]}', `${S('w')}depends_on "db" is not a service of this stack`],
    ['services:\n  w: {image: "${TAG:?set TAG to the release}"}', `${P}variable TAG: set TAG to the release`],
    ['version: "3"\nfoo: {}', `${P}has a Compose \`version:\` but no \`services:\` map`],
    ['', `${P}is empty`],
    ['- a\n- b', `${P}is not a map of services`],
    ['services: {}', `${P}has no services`],
    ['web: {image: x}\nweb: {image: y}', `${P}is not valid YAML: Map keys must be unique at line 2, column 1:`],
    ['web: {image: !!binary aGk=}', `${P}is not valid YAML: Unresolved tag: tag:yaml.org,2002:binary at line 1, column 14:`],
    ['web: {image: !custom x}', `${P}is not valid YAML: Unresolved tag: !custom at line 1, column 14:`],
  ])('%s', (text, message) => {
    expect(errors(text)).toEqual([message]);
  });

  test('a bad stack name is refused', () => {
    const r = readStack('web: {image: x}\n', { file: FILE, stack: 'My Shop' });
    expect(!r.ok && r.errors).toEqual([`${P}the stack name "My Shop" is not a DNS label (lower-case letters, digits and -, starting and ending with a letter or digit)`]);
  });

  test('every error of a file is listed, and nothing is returned to deploy', () => {
    const r = read('a: {image: x, target_num_containers: 2000}\nb: {ports: [x]}\n');
    expect(r.ok).toBe(false);
    expect(!r.ok && r.errors).toHaveLength(3);
    expect(r).not.toHaveProperty('services');
  });

  test('a file with thousands of errors lists the first 50', () => {
    const text = Array.from({ length: 400 }, (_, i) => `s${i}: {target_num_containers: -1}`).join('\n');
    const e = errors(text);
    expect(e).toHaveLength(51);
    expect(e[50]).toMatch(/more errors not shown/);
  });

  test('too many services', () => {
    const text = Array.from({ length: 501 }, (_, i) => `s${i}: {image: x}`).join('\n');
    expect(errors(text)).toEqual([`${P}has 501 services; a stack has at most 500`]);
  });
});

describe('a hostile file is one error, quickly', () => {
  const QUICK_MS = 1000; // generous on a loaded machine; the attacks below take minutes or crash without the limits
  const one = (text: string, pattern: RegExp): void => {
    const t = performance.now();
    const e = errors(text);
    expect(performance.now() - t).toBeLessThan(QUICK_MS);
    expect(e).toHaveLength(1);
    expect(e[0]).toMatch(pattern);
  };
  test('billion laughs (aliases expanding exponentially)', () => {
    const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 10; i++) lines.push(`a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(', ')}]`);
    lines.push('web: {image: x, command: *a9}');
    one(lines.join('\n'), /uses YAML aliases too much/);
  });
  test('a 10 MB document', () => one(`web:\n  image: x\n  command: "${'a'.repeat(10 * 1024 * 1024)}"\n`, /is larger than 1 MiB/));
  test('deep flow nesting', () => one('['.repeat(500_000), /is nested too deeply at line 1/));
  test('deep block nesting', () => one(Array.from({ length: 1000 }, (_, i) => `${' '.repeat(i)}a:`).join('\n'), /is nested too deeply/));
  test('deep sequence nesting', () => one(`${'- '.repeat(1000)}x`, /is nested too deeply/));
  test('binary junk', () => {
    let seed = 7;
    const junk = Array.from({ length: 100_000 }, () => String.fromCharCode((seed = (seed * 1103515245 + 12345) % 2 ** 31) % 256)).join('');
    one(junk, /is not a text file/);
  });
  test('a file of bytes that are not UTF-8, read from disk', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stackfile-'));
    writeFileSync(join(dir, 'junk.yml'), Buffer.from([0x77, 0x3a, 0x20, 0xff, 0xfe, 0xc3, 0x28]));
    const r = await readStackFile(join(dir, 'junk.yml'));
    expect(!r.ok && r.errors).toEqual([`weft: stackfile ${join(dir, 'junk.yml')}: is not a text file (it holds control characters or bytes that are not UTF-8)`]);
  });
});

describe('the file reader', () => {
  test('reads a file, naming the stack after it', async () => {
    const r = await readStackFile(fixture('minimal.yml'));
    expect(r.ok && r.services[0]?.stack).toBe('minimal');
  });
  test('a missing file and a huge file are one error each, without reading the huge one whole', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stackfile-'));
    writeFileSync(join(dir, 'big.yml'), Buffer.alloc(MAX_DOCUMENT_BYTES * 3, 0x20));
    expect(await readStackFile(join(dir, 'big.yml'))).toEqual({ ok: false, errors: [`weft: stackfile ${join(dir, 'big.yml')}: is larger than 1 MiB`] });
    expect(await readStackFile(join(dir, 'none.yml'))).toEqual({ ok: false, errors: [`weft: stackfile ${join(dir, 'none.yml')}: cannot be read (no such file)`] });
  });
});

test('2,000 mutated stackfiles never throw, and each is services or errors', () => {
  const seeds = [readFileSync(fixture('shop.yml'), 'utf8'), readFileSync(fixture('anchors.yml'), 'utf8'), 'web:\n  image: x\n  ports: ["80:80"]\n  links: [db]\ndb: {image: y, target_num_containers: 3}\n'];
  const pieces = ['[', ']', '{', '}', ':', '- ', '&a ', '*a', '<<: ', '!!binary ', '"', "'", '\n  ', '\t', '#', '${X}', '$$', '-1', '99999', 'null', '~', 'yes', '\0', '\u00ff', '0x10', '1e9', '__proto__: {image: x}\n'];
  let state = 12345;
  const rand = (n: number): number => (state = (state * 1103515245 + 12345) % 2 ** 31) % n;
  for (let i = 0; i < 2000; i++) {
    let text = seeds[i % seeds.length] as string;
    for (let m = 0, n = 1 + rand(5); m < n; m++) {
      const at = rand(text.length + 1);
      const op = rand(3);
      if (op === 0) text = text.slice(0, at) + (pieces[rand(pieces.length)] as string) + text.slice(at);
      else if (op === 1) text = text.slice(0, at) + text.slice(at + 1 + rand(20));
      else text = text.slice(0, at) + text.slice(rand(text.length + 1));
    }
    let r: StackResult | undefined;
    expect(() => (r = read(text, { B: 'b' })), `mutation ${i}:\n${text}`).not.toThrow();
    if (r?.ok) expect(r.services.length).toBeGreaterThan(0);
    else expect(r?.errors.length).toBeGreaterThan(0);
  }
});

// --- Compose files checked against docker-compose 1.29 ----------------------------------------

const FIXTURES = fileURLToPath(new URL('../fixtures/compose/', import.meta.url));
function fixture(name: string): string {
  return join(FIXTURES, name);
}
const DOCKER_COMPOSE = spawnSync('docker-compose', ['version', '--short'], { encoding: 'utf8' });
const HAVE_COMPOSE = DOCKER_COMPOSE.status === 0;
if (!HAVE_COMPOSE) console.warn('stackfile.test.ts: docker-compose is not installed; the check against docker-compose config is skipped (apt-get install docker-compose)');

const EXPECTED: Record<string, () => ServiceSpec[]> = {
  'shop.yml': () => SHOP,
  'anchors.yml': () => ANCHORS,
  'global.yml': () => [{
    ...defaults('agent', 'example/agent:2'), entrypoint: ['/bin/agent', '--verbose'], environment: { LOG_LEVEL: 'debug', PORT: '9100' },
    ports: [{ container: 9100, protocol: 'tcp' }, { container: 9101, protocol: 'udp' }], deploymentStrategy: 'EVERY_NODE', autorestart: 'ALWAYS', memoryBytes: 128 * 1024 ** 2,
  }],
  'minimal.yml': () => [{ ...defaults('redis', 'redis:7'), ports: [{ container: 6379, protocol: 'tcp', host: 6379 }], volumes: ['cache:/data'] }],
};

describe.skipIf(!HAVE_COMPOSE)('Compose files docker-compose 1.29 accepts', () => {
  test('every fixture has its expected services', () => {
    expect(readdirSync(FIXTURES).filter((f) => f.endsWith('.yml')).sort()).toEqual(Object.keys(EXPECTED).sort());
  });
  test.each(Object.keys(EXPECTED))('%s reads the same as written and as docker-compose config prints it', (name) => {
    const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', B: 'bee' };
    const normalised = execFileSync('docker-compose', ['-f', fixture(name), 'config'], { encoding: 'utf8', env, cwd: FIXTURES });
    expect(services(readFileSync(fixture(name), 'utf8'), { B: 'bee' })).toEqual(EXPECTED[name]?.());
    // docker-compose prints services sorted by name.
    const byName = (a: ServiceSpec, b: ServiceSpec): number => a.name.localeCompare(b.name);
    expect(services(normalised, { B: 'bee' }).sort(byName)).toEqual(EXPECTED[name]?.().sort(byName));
  });
});

const SHOP: ServiceSpec[] = [
  {
    ...defaults('web', 'nginx:1.25'),
    command: ['nginx', '-g', 'daemon off;'],
    environment: { A: '1', B: 'bee' },
    ports: [{ container: 53, protocol: 'udp', host: 53 }, { container: 80, protocol: 'tcp', host: 8080 }, { container: 443, protocol: 'tcp' }, { container: 9000, protocol: 'tcp' }],
    targetNumContainers: 3, tags: ['zone=a', 'role=worker'], autorestart: 'ON_FAILURE', links: [{ service: 'db', alias: 'database' }],
    memoryBytes: 50 * 1024 ** 2, cpuShares: 512, labels: { a: 'b' }, volumes: ['data:/data:ro'],
    update: { parallelism: 2, delayMs: 10_000, onFailure: 'rollback' },
    healthcheck: { test: ['CMD-SHELL', 'curl -f http://localhost'], intervalMs: 90_000, timeoutMs: 10_000, retries: 3, startPeriodMs: 40_000 },
  },
  { ...defaults('db', 'postgres'), environment: { X: '1' } },
];

const ANCHORS: ServiceSpec[] = [
  {
    ...defaults('worker', 'example/worker:1.4'), command: ['worker', '--queue', 'high'], autorestart: 'ALWAYS', labels: { 'com.example.team': 'payments' },
    targetNumContainers: 5, update: { parallelism: 1000, delayMs: 90_000, onFailure: 'continue' },
  },
  {
    ...defaults('scheduler', 'example/worker:1.4'), command: ['worker', '--queue', 'low priority'], autorestart: 'ALWAYS', labels: { 'com.example.team': 'payments' },
    healthcheck: { test: ['CMD', 'worker', 'ping'], intervalMs: 5000, timeoutMs: 30_000, retries: 10, startPeriodMs: 0 },
  },
];

describe('what the reader gives is what the API and desired state take', () => {
  test('every fixture\'s services pass the service schema; a host path does not', async () => {
    for (const f of readdirSync(FIXTURES).filter((x) => x.endsWith('.yml'))) {
      const r = await readStackFile(join(FIXTURES, f), { stack: 'fx' });
      expect(r.ok, f).toBe(true);
      if (r.ok) for (const s of r.services) expect(serviceSpecProblem(s), `${f}: ${s.name}`).toBeUndefined();
    }
    const r = readStack('web:\n  image: nginx\n  volumes: ["data:/var/lib/data:ro"]\n', { file: 'v.yml', stack: 'fx' });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const spec = r.services[0] as ServiceSpec;
    expect(serviceSpecProblem(spec)).toBeUndefined();
    expect(serviceSpecProblem({ ...spec, volumes: ['/etc:/host-etc'] })).toMatch(/volumes\.0: must be a named volume/);
  });
});
