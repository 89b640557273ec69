// Registry and discovery: how fast a registration or deregistration reaches another kit's view, beside
// etcd's own put-to-watch latency through the same client (etcd3) in the same run. How discovery scales
// with the registry's size is bench/scale.ts.
import { performance } from 'node:perf_hooks'
import { EtcdKit, silentLogger } from '@etcdkit/core'
import { type EtcdCluster, startEtcd } from '@etcdkit/testing'
import { Etcd3 } from 'etcd3'
import { percentile, printTable } from './stats.js'

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 300)

let etcd: EtcdCluster | undefined
let endpoints = process.env.ETCD_ENDPOINTS?.split(',')
if (!endpoints) {
  etcd = await startEtcd()
  endpoints = etcd.endpoints
}
const ns = `bench-registry-${process.pid}/`

// Baseline: etcd3 put, and the time until an etcd3 watcher on the same client sees it.
const client = new Etcd3({ hosts: endpoints })
const watcher = await client.watch().prefix(`${ns}base/`).create()
let onPut: (() => void) | undefined
watcher.on('put', () => onPut?.())
const putRtt: number[] = []
const putToWatch: number[] = []
for (let i = 0; i < ROUNDS; i++) {
  const seen = new Promise<void>((resolve) => {
    onPut = resolve
  })
  const t0 = performance.now()
  await client.put(`${ns}base/${i}`).value('x')
  putRtt.push(performance.now() - t0)
  await seen
  putToWatch.push(performance.now() - t0)
}
await watcher.cancel()

// etcdkit: register() on one kit until another kit's view has it; deregister() until it is gone.
const provider = new EtcdKit({ endpoints, namespace: ns, logger: silentLogger })
const consumer = new EtcdKit({ endpoints, namespace: ns, logger: silentLogger })
const view = consumer.discover('bench')
await view.ready
await provider.register({ service: 'warmup', address: '127.0.0.1:1' })
const waitFor = (pred: () => boolean) =>
  new Promise<void>((resolve) => {
    const check = () => {
      if (pred()) {
        view.off('change', check)
        resolve()
      }
    }
    view.on('change', check)
  })
const regToView: number[] = []
const deregToView: number[] = []
for (let i = 0; i < ROUNDS; i++) {
  const address = `10.9.${i >> 8}.${i & 255}:80`
  let seen = waitFor(() => view.instances.some((x) => x.address === address))
  let t0 = performance.now()
  const reg = await provider.register({ service: 'bench', address })
  await seen
  regToView.push(performance.now() - t0)
  seen = waitFor(() => !view.instances.some((x) => x.address === address))
  t0 = performance.now()
  await reg.deregister()
  await seen
  deregToView.push(performance.now() - t0)
}

printTable(`registry and discovery (${ROUNDS} rounds, medians unless noted)`, [
  { what: 'etcd put round trip (etcd3), p50', value: percentile(putRtt, 50), unit: 'ms' },
  { what: 'etcd put to watch event (etcd3), p50', value: percentile(putToWatch, 50), unit: 'ms' },
  {
    what: "register() to another kit's view, p50",
    value: percentile(regToView, 50),
    unit: 'ms',
    baseline: percentile(putToWatch, 50),
    target: '<= 1.5x put-to-watch',
  },
  {
    what: "deregister() to another kit's view, p50",
    value: percentile(deregToView, 50),
    unit: 'ms',
    baseline: percentile(putToWatch, 50),
    target: '<= 1.5x put-to-watch',
  },
  {
    what: 'register() to view, p99',
    value: percentile(regToView, 99),
    unit: 'ms',
    baseline: percentile(putToWatch, 99),
  },
])
await Promise.all([provider.close(), consumer.close()])
client.close()
await etcd?.close()
