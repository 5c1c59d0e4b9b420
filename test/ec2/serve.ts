// The EC2 double as a process of its own, for tests whose peers run in a network namespace:
// `node test/ec2/serve.ts HOST PORT STATE_FILE CREDENTIALS_FILE` (a JSON object of access key ids
// and secrets: a file, so no secret is on a command line). It writes what it was asked and what
// it holds (calls, instances, groups) to STATE_FILE five times a second.
import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import { start } from './ec2-double.ts';

const [host, port, stateFile, credentialsFile] = process.argv.slice(2) as [string, string, string, string];
const credentials = JSON.parse(readFileSync(credentialsFile, 'utf8')) as Record<string, string>;
const double = await start({ host, port: Number(port), credentials, zones: ['us-east-1a', 'us-east-1b'], launchDelayMs: 200, terminateDelayMs: 200, log: () => {} });
const dump = () => {
  const state = { url: double.url, calls: double.callLog(), instances: double.instances().map(({ userData: _u, ...i }) => i), groups: double.securityGroups() };
  writeFileSync(`${stateFile}.tmp`, JSON.stringify(state));
  renameSync(`${stateFile}.tmp`, stateFile);
};
dump();
setInterval(dump, 200);
process.on('SIGTERM', () => void double.stop().then(() => process.exit(0)));
