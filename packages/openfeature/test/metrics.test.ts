// The flag provider's OpenTelemetry counters, read through the real SDK.
import { metrics } from '@opentelemetry/api'
import { type DataPoint, MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics'
import test from 'ava'
import { EtcdKitFlagProvider, FlagAdmin, METER_NAME } from '../src/index.js'
import { etcd, eventually, flagsOf, kit } from './helpers.js'

class CollectingReader extends MetricReader {
  protected async onShutdown() {}
  protected async onForceFlush() {}
}

const reader = new CollectingReader()
// before any provider exists: each new provider binds the instruments to the global provider
metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }))

test.after.always(async () => (await etcd()).close())

async function count(name: string, flag: string): Promise<number> {
  const { resourceMetrics } = await reader.collect()
  for (const scope of resourceMetrics.scopeMetrics) {
    if (scope.scope.name !== METER_NAME) continue
    for (const m of scope.metrics)
      if (m.descriptor.name === name)
        for (const p of m.dataPoints as DataPoint<number>[])
          if (p.attributes['etcdkit.flag.key'] === flag) return p.value
  }
  return 0
}

test('etcdkit.flags.updates and etcdkit.flags.refusals count per flag key', async (t) => {
  await using k = await kit()
  const provider = new EtcdKitFlagProvider({ kit: k })
  await provider.initialize()
  await new FlagAdmin(k).setBoolean('m', true)
  await eventually(async () => (await count('etcdkit.flags.updates', 'm')) === 1, 'one update')
  await flagsOf(k).set('m', '{"state":')
  await eventually(async () => (await count('etcdkit.flags.refusals', 'm')) === 1, 'one refusal')
  t.is(await count('etcdkit.flags.updates', 'm'), 1)
  await provider.onClose()
})
