// Shared by the benchmarks: percentiles, ratio tables, the machine, etcd's own metrics. Medians and ratios
// only: the machines are shared and noisy, absolute figures from one run mean little.
import os from 'node:os'

export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN
  const sorted = [...samples].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}

export interface Row {
  what: string
  /** The measured figure and its unit, e.g. 1.23 (ms). */
  value: number
  unit: string
  /** The baseline's figure, in the same unit, when the row is compared to one. */
  baseline?: number
  target?: string
}

export function printTable(title: string, rows: readonly Row[]) {
  console.log(`\n## ${title}\n`)
  console.log('| what | value | baseline | ratio | target |')
  console.log('| --- | ---: | ---: | ---: | --- |')
  for (const r of rows) {
    const fmt = (v: number) => `${v < 10 ? v.toFixed(2) : v.toFixed(0)} ${r.unit}`
    const ratio = r.baseline === undefined ? '' : `${(r.value / r.baseline).toFixed(2)}x`
    console.log(
      `| ${r.what} | ${fmt(r.value)} | ${r.baseline === undefined ? '' : fmt(r.baseline)} | ${ratio} | ${r.target ?? ''} |`,
    )
  }
}

export function median(samples: readonly number[]): number {
  if (samples.length === 0) return Number.NaN
  const s = [...samples].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

/** `1.23 ms` below 10, `123 ms` above: enough digits for figures this noisy. */
export function fmt(value: number, unit = ''): string {
  if (!Number.isFinite(value)) return '—'
  const text = Math.abs(value) < 10 ? value.toFixed(2) : value.toFixed(0)
  return unit ? `${text} ${unit}` : text
}

/** A markdown table: a header row and rows of cells. */
export function printGrid(title: string, header: readonly string[], rows: readonly (readonly string[])[]) {
  console.log(`\n## ${title}\n`)
  console.log(`| ${header.join(' | ')} |`)
  console.log(`| ${header.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`)
  for (const r of rows) console.log(`| ${r.join(' | ')} |`)
}

/** The machine the figures come from: cores, CPU model, memory, and the load when the bench started. */
export function machine(): string {
  const cpus = os.cpus()
  const load = os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')
  return `${cpus.length} cores (${cpus[0]?.model.trim() ?? 'unknown CPU'}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, load average ${load}, Node ${process.version}`
}

/** etcd's Prometheus metrics (served on the client URL), as name{labels} -> value. */
export async function etcdMetrics(endpoint: string): Promise<Map<string, number>> {
  const url = `${endpoint.startsWith('http') ? endpoint : `http://${endpoint}`}/metrics`
  const text = await (await fetch(url, { signal: AbortSignal.timeout(5_000) })).text()
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line === '') continue
    const at = line.lastIndexOf(' ')
    out.set(line.slice(0, at), Number(line.slice(at + 1)))
  }
  return out
}

/** The gauges and counters of etcd's that say how many leases, streams and watchers its clients hold. */
export interface EtcdLoad {
  /** Leases granted and neither revoked nor expired. */
  leases: number
  /** Open watch streams (`etcd_debugging_mvcc_watch_stream_total`). */
  watchStreams: number
  /** Watchers on those streams (`etcd_debugging_mvcc_watcher_total`). */
  watchers: number
  /** Open lease keepalive streams (LeaseKeepAlive streams started and not yet ended). */
  keepAliveStreams: number
}

export async function etcdLoad(endpoint: string): Promise<EtcdLoad> {
  const m = await etcdMetrics(endpoint)
  const get = (name: string) => m.get(name) ?? 0
  const keepAlive = 'grpc_method="LeaseKeepAlive",grpc_service="etcdserverpb.Lease",grpc_type="bidi_stream"'
  let ended = 0
  for (const [name, value] of m)
    if (name.startsWith('grpc_server_handled_total{') && name.includes(keepAlive)) ended += value
  return {
    leases:
      get('etcd_debugging_lease_granted_total') -
      get('etcd_debugging_lease_revoked_total') -
      get('etcd_debugging_server_lease_expired_total'),
    watchStreams: get('etcd_debugging_mvcc_watch_stream_total'),
    watchers: get('etcd_debugging_mvcc_watcher_total'),
    keepAliveStreams: get(`grpc_server_started_total{${keepAlive}}`) - ended,
  }
}
