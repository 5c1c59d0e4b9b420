import { createServer, type Server } from 'node:http';

/**
 * A minimal Prometheus registry: the peer registers gauges and counters as functions read at
 * scrape time, so no bookkeeping runs on the hot path beyond the counters it already keeps.
 */
export interface Sample {
  labels?: Record<string, string>;
  value: number;
}

interface Metric {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  read: () => Sample[];
}

export class Metrics {
  private readonly metrics: Metric[] = [];

  counter(name: string, help: string, read: () => number | Sample[]): void {
    this.metrics.push({ name, help, type: 'counter', read: wrap(read) });
  }

  gauge(name: string, help: string, read: () => number | Sample[]): void {
    this.metrics.push({ name, help, type: 'gauge', read: wrap(read) });
  }

  render(): string {
    let out = '';
    for (const m of this.metrics) {
      out += `# HELP ${m.name} ${m.help}\n# TYPE ${m.name} ${m.type}\n`;
      for (const s of m.read()) {
        const labels = s.labels && Object.keys(s.labels).length
          ? '{' + Object.entries(s.labels).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',') + '}'
          : '';
        out += `${m.name}${labels} ${s.value}\n`;
      }
    }
    return out;
  }

  /** Serves /metrics on host:port; resolves once listening, rejects with a user sentence. */
  async serve(host: string, port: number): Promise<Server> {
    const server = createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end('not found: try /metrics\n');
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(this.render());
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) =>
        reject(new Error(err.code === 'EADDRINUSE'
          ? `the metrics address ${host}:${port} is in use (choose another with --metrics-listen, or "off")`
          : `cannot serve metrics on ${host}:${port}: ${err.message}`)));
      server.listen(port, host, () => resolve());
    });
    return server;
  }
}

function wrap(read: () => number | Sample[]): () => Sample[] {
  return () => {
    const v = read();
    return typeof v === 'number' ? [{ value: v }] : v;
  };
}
