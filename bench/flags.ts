// Feature flags (@etcdkit/openfeature). 1) Evaluation cost per call: the provider (instance context merged
// in, flagd-core evaluating from the definitions read from etcd) against @openfeature/flagd-core alone on
// the same definitions and contexts, in the same process, alternating batches. Target: <= 1.1x.
// 2) Change visibility: a put through a plain etcd3 client until an evaluation through the provider
// returns the new value (its `change` event), beside etcd's own put-to-watch latency through that same
// client, alternating, on the same etcd. Target: <= 1.2x put-to-watch.
// Medians and ratios only: the machines are shared and noisy.
import { performance } from 'node:perf_hooks'
import { EtcdKit, silentLogger } from '@etcdkit/core'
import { EtcdKitFlagProvider, FlagAdmin, type FlagDefinition } from '@etcdkit/openfeature'
import { startEtcd } from '@etcdkit/testing'
import { FlagdCore } from '@openfeature/flagd-core'
import {
  type EvaluationContext,
  type JsonValue,
  OpenFeature,
  type Provider,
  type ResolutionDetails,
} from '@openfeature/server-sdk'
import { Etcd3 } from 'etcd3'
import { percentile } from './stats.js'

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 900)
const WARMUP = 100
const BATCHES = Number(process.env.BENCH_BATCHES ?? 30)
const CALLS = 20_000

const definitions: Record<string, FlagDefinition> = {
  static: { state: 'ENABLED', variants: { on: true, off: false }, defaultVariant: 'on' },
  targeting: {
    state: 'ENABLED',
    variants: { on: true, off: false },
    defaultVariant: 'off',
    targeting: { if: [{ ends_with: [{ var: 'email' }, '@example.com'] }, 'on', 'off'] },
  },
  fractional: {
    state: 'ENABLED',
    variants: { on: true, off: false },
    defaultVariant: 'off',
    targeting: {
      fractional: [
        ['on', 1000],
        ['off', 9000],
      ],
    },
  },
  // a rule on an instance fact the caller does not pass: the provider adds it (a copy of the context per
  // evaluation); flagd-core alone is given contexts that already hold it, so the copy is what is measured
  'instance-fact': {
    state: 'ENABLED',
    variants: { on: true, off: false },
    defaultVariant: 'off',
    targeting: { if: [{ '==': [{ var: 'service' }, 'orders'] }, 'on', 'off'] },
  },
}
const contexts: EvaluationContext[] = Array.from({ length: 64 }, (_, i) => ({
  targetingKey: `user-${i}`,
  email: i % 2 ? `u${i}@example.com` : `u${i}@other.org`,
}))
const withService = contexts.map((c) => ({ ...c, service: 'orders' }))

const fromEnv = process.env.ETCD_ENDPOINTS?.split(',').filter(Boolean)
const own = fromEnv?.length ? undefined : await startEtcd()
const endpoints = fromEnv?.length ? fromEnv : own!.endpoints
const ns = `bench-flags-${process.pid}/`

const client = new Etcd3({ hosts: endpoints })
const kit = new EtcdKit({ endpoints, namespace: ns, logger: silentLogger, service: 'orders' })
const provider = new EtcdKitFlagProvider({ kit })
try {
  const admin = new FlagAdmin(kit)
  for (const [key, definition] of Object.entries(definitions)) await admin.set(key, definition)
  await provider.initialize()
  const alone = new FlagdCore()
  alone.setConfigurations(JSON.stringify({ flags: definitions }))

  // 1) evaluation cost: alternating batches of CALLS evaluations, ns per call
  let sink = 0
  const cost: Record<string, { provider: number[]; alone: number[] }> = {}
  for (const key of Object.keys(definitions)) {
    const samples = { provider: [] as number[], alone: [] as number[] }
    const given = key === 'instance-fact' ? withService : contexts
    for (let b = 0; b < BATCHES * 2 + 4; b++) {
      const ours = b % 2 === 0
      const t0 = performance.now()
      for (let i = 0; i < CALLS; i++) {
        const r = ours
          ? provider.resolve('boolean', key, false, contexts[i & 63])
          : alone.resolveBooleanEvaluation(key, false, given[i & 63]!)
        if (r.value) sink++
      }
      const ns = ((performance.now() - t0) * 1e6) / CALLS
      if (b >= 4) (ours ? samples.provider : samples.alone).push(ns)
    }
    cost[key] = samples
  }
  console.log(
    `\n## evaluation cost per call (${BATCHES} batches of ${CALLS} each, alternating; sink ${sink})\n`,
  )
  console.log('| flag | flagd-core alone, p50 | provider.resolve, p50 | ratio | target |')
  console.log('| --- | ---: | ---: | ---: | --- |')
  for (const [key, s] of Object.entries(cost)) {
    const a = percentile(s.alone, 50)
    const p = percentile(s.provider, 50)
    console.log(`| ${key} | ${a.toFixed(0)} ns | ${p.toFixed(0)} ns | ${(p / a).toFixed(2)}x | <= 1.1x |`)
  }

  // 1b) the same through the OpenFeature SDK (what an app calls): our provider against a provider that
  // only calls flagd-core on the same definitions
  class FlagdCoreAlone implements Provider {
    readonly metadata = { name: 'flagd-core alone' }
    readonly runsOn = 'server' as const
    resolveBooleanEvaluation(key: string, fallback: boolean, context: EvaluationContext) {
      return Promise.resolve(alone.resolveBooleanEvaluation(key, fallback, context))
    }
    resolveStringEvaluation(key: string, fallback: string, context: EvaluationContext) {
      return Promise.resolve(alone.resolveStringEvaluation(key, fallback, context))
    }
    resolveNumberEvaluation(key: string, fallback: number, context: EvaluationContext) {
      return Promise.resolve(alone.resolveNumberEvaluation(key, fallback, context))
    }
    resolveObjectEvaluation<T extends JsonValue>(
      key: string,
      fallback: T,
      context: EvaluationContext,
    ): Promise<ResolutionDetails<T>> {
      return Promise.resolve(alone.resolveObjectEvaluation(key, fallback, context))
    }
  }
  await OpenFeature.setProviderAndWait('etcd', provider)
  await OpenFeature.setProviderAndWait('alone', new FlagdCoreAlone())
  const clients = { etcd: OpenFeature.getClient('etcd'), alone: OpenFeature.getClient('alone') }
  const SDK_CALLS = CALLS / 10
  console.log(
    `\n## through the OpenFeature SDK: client.getBooleanValue per call (${BATCHES} batches of ${SDK_CALLS} each, alternating)\n`,
  )
  console.log('| flag | flagd-core alone as a provider, p50 | EtcdKitFlagProvider, p50 | ratio | target |')
  console.log('| --- | ---: | ---: | ---: | --- |')
  for (const key of Object.keys(definitions)) {
    const samples = { etcd: [] as number[], alone: [] as number[] }
    for (let b = 0; b < BATCHES * 2 + 4; b++) {
      const which = b % 2 === 0 ? 'etcd' : 'alone'
      const t0 = performance.now()
      for (let i = 0; i < SDK_CALLS; i++)
        if (
          await clients[which].getBooleanValue(
            key,
            false,
            (which === 'alone' && key === 'instance-fact' ? withService : contexts)[i & 63],
          )
        )
          sink++
      const ns = ((performance.now() - t0) * 1e6) / SDK_CALLS
      if (b >= 4) samples[which].push(ns)
    }
    const a = percentile(samples.alone, 50)
    const p = percentile(samples.etcd, 50)
    console.log(`| ${key} | ${a.toFixed(0)} ns | ${p.toFixed(0)} ns | ${(p / a).toFixed(2)}x | <= 1.1x |`)
  }

  // 2) change visibility, interleaved with etcd3's own put -> watch
  const baseKey = `${ns}base`
  const watcher = await client.watch().key(baseKey).create()
  let onBase: ((value: string) => void) | undefined
  watcher.on('put', (kv) => onBase?.(kv.value.toString()))
  let onChange: (() => void) | undefined
  provider.on('change', () => onChange?.())
  const flagKey = `${ns}flags/live`
  const liveDefinition = (i: number) =>
    JSON.stringify({ state: 'ENABLED', variants: { on: i, off: -1 }, defaultVariant: 'on' })
  // the kit's config watch alone, on another key of the same prefix: what the provider adds is above it
  const rawKey = `${ns}config/raw/live`
  const raw = kit.config.watch('raw/')
  await raw.ready
  let onRaw: ((value: string | undefined) => void) | undefined
  raw.on('change', (event) => onRaw?.(event.value))
  const base: number[] = []
  const watched: number[] = []
  const flag: number[] = []
  for (let i = 0; i < WARMUP + ROUNDS; i++) {
    const which = i % 3
    const seen = new Promise<number>((resolve) => {
      if (which === 0) onBase = (v) => v === String(i) && resolve(performance.now())
      else if (which === 1) onRaw = (v) => v === String(i) && resolve(performance.now())
      else
        onChange = () => {
          if (provider.resolve('number', 'live', -2).value === i) resolve(performance.now())
        }
    })
    const start = performance.now()
    const put = client
      .put([baseKey, rawKey, flagKey][which]!)
      .value(which === 2 ? liveDefinition(i) : String(i))
      .exec()
    const at = await seen
    await put
    if (i >= WARMUP) [base, watched, flag][which]!.push(at - start)
  }
  raw.close()
  await watcher.cancel()
  const baseP50 = percentile(base, 50)
  console.log(
    `\n## flag change visibility (${Math.floor(ROUNDS / 3)} samples each, interleaved, one etcd 3.4)\n`,
  )
  console.log('| what | p50 | p90 | p99 | p50 ratio | target |')
  console.log('| --- | ---: | ---: | ---: | ---: | --- |')
  for (const [what, samples] of [
    ['etcd3 put -> etcd3 watch event (baseline)', base],
    ['etcd3 put -> kit.config.watch change event (no provider)', watched],
    ['etcd3 put -> provider change event, evaluation returns the new value', flag],
  ] as const) {
    const ms = (p: number) => `${percentile(samples, p).toFixed(3)} ms`
    console.log(
      `| ${what} | ${ms(50)} | ${ms(90)} | ${ms(99)} | ${(percentile(samples, 50) / baseP50).toFixed(2)}x | ${samples === flag ? '<= 1.2x' : ''} |`,
    )
  }
} finally {
  await OpenFeature.close()
  await provider.onClose()
  await kit.close()
  client.close()
  await own?.close()
}
