// Config change latency: a put through a plain etcd3 client (what `etcdctl put` does) until the new value
// is in `kit.config.value(...).current` and its `change` fired, beside etcd's own put-to-watch latency
// through that same etcd3 client, measured in the same run, alternating, on the same etcd.
// A third row does the same through @etcdkit/decorators: until an @OnConfigChange handler runs and the
// @Config property reads the new value.
// Medians and ratios only: the machines are shared and noisy. Target: <= 1.5x put-to-watch.
import { performance } from 'node:perf_hooks'
import { EtcdKit, silentLogger } from '@etcdkit/core'
import { bindEtcdKit, Config, OnConfigChange } from '@etcdkit/decorators'
import { startEtcd } from '@etcdkit/testing'
import { Etcd3 } from 'etcd3'
import { percentile } from './stats.js'

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2_000)
const WARMUP = 200

let onDecorated: ((value: number) => void) | undefined
class Tuned {
  @Config('decorated', { parse: Number, default: -1 })
  value!: number

  @OnConfigChange('decorated')
  changed(value: number) {
    if (this.value === value) onDecorated?.(value)
  }
}

const fromEnv = process.env.ETCD_ENDPOINTS?.split(',').filter(Boolean)
const own = fromEnv?.length ? undefined : await startEtcd()
const endpoints = fromEnv?.length ? fromEnv : own!.endpoints
const ns = `bench-config-${process.pid}/`

const client = new Etcd3({ hosts: endpoints })
const kit = new EtcdKit({ endpoints, namespace: ns, logger: silentLogger })
try {
  // baseline: etcd3's own watcher, on the client that puts
  const baseKey = `${ns}base`
  const watcher = await client.watch().key(baseKey).create()
  let onBase: ((value: string) => void) | undefined
  watcher.on('put', (kv) => onBase?.(kv.value.toString()))

  const configKey = `${ns}config/latency`
  const value = kit.config.value('latency', { parse: Number, default: -1 })
  let onConfig: ((value: number) => void) | undefined
  value.on('change', (v) => onConfig?.(v))
  await value.ready
  const decoratedKey = `${ns}config/decorated`
  bindEtcdKit(new Tuned(), kit)

  const base: number[] = []
  const config: number[] = []
  const decorated: number[] = []
  for (let i = 0; i < WARMUP + ROUNDS; i++) {
    const which = i % 3
    const seen = new Promise<number>((resolve) => {
      if (which === 0) onBase = (v) => v === String(i) && resolve(performance.now())
      else if (which === 1) onConfig = (v) => v === i && value.current === i && resolve(performance.now())
      else onDecorated = (v) => v === i && resolve(performance.now())
    })
    const start = performance.now()
    const put = client.put([baseKey, configKey, decoratedKey][which]!).value(String(i)).exec() // builders are lazy: start the put now
    const at = await seen
    await put
    if (i >= WARMUP) [base, config, decorated][which]!.push(at - start)
  }
  await watcher.cancel()

  const rows: Array<[string, number[]]> = [
    ['etcd3 put -> etcd3 watch event (baseline)', base],
    ['etcd3 put -> kit.config value.current + change', config],
    ['etcd3 put -> @OnConfigChange with the @Config property updated', decorated],
  ]
  const baseP50 = percentile(base, 50)
  console.log(
    `\n## config change latency (${Math.floor(ROUNDS / 3)} samples each, interleaved, one etcd 3.4)\n`,
  )
  console.log('| what | p50 | p90 | p99 | p50 ratio | target |')
  console.log('| --- | ---: | ---: | ---: | ---: | --- |')
  for (const [what, samples] of rows) {
    const ms = (p: number) => `${percentile(samples, p).toFixed(3)} ms`
    const ratio = (percentile(samples, 50) / baseP50).toFixed(2)
    console.log(
      `| ${what} | ${ms(50)} | ${ms(90)} | ${ms(99)} | ${ratio}x | ${samples === base ? '' : '<= 1.5x'} |`,
    )
  }
} finally {
  await kit.close()
  client.close()
  await own?.close()
}
