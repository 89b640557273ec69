// The flag provider's OpenTelemetry instruments (core keeps its own instruments private, so they live here).
import { type Counter, type MeterProvider, metrics, ValueType } from '@opentelemetry/api'

/** The instrumentation scope: the meter's name. */
export const METER_NAME = '@etcdkit/openfeature'

let provider: MeterProvider | undefined
let updates: Counter | undefined
let refusals: Counter | undefined

/**
 * Creates the instruments on the global meter provider the app registered (a no-op without an SDK). Called
 * by each provider's constructor: an SDK registered after the first provider is still picked up.
 */
export function bindMeterProvider() {
  const p = metrics.getMeterProvider()
  if (p === provider) return
  provider = p
  const meter = p.getMeter(METER_NAME)
  updates = meter.createCounter('etcdkit.flags.updates', {
    description: 'Flag definitions that took effect from etcd (changed, added or deleted)',
    unit: '{update}',
    valueType: ValueType.INT,
  })
  refusals = meter.createCounter('etcdkit.flags.refusals', {
    description: 'Flag definitions refused by the flagd schema or flagd-core (the last good one stays)',
    unit: '{refusal}',
    valueType: ValueType.INT,
  })
}

/** Flag `key` resolves differently from now on. */
export function recordFlagUpdate(key: string) {
  updates?.add(1, { 'etcdkit.flag.key': key })
}

/** The definition of flag `key` was refused. */
export function recordFlagRefusal(key: string) {
  refusals?.add(1, { 'etcdkit.flag.key': key })
}
