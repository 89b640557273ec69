import { readFileSync } from 'node:fs'
import { FlagdCore } from '@openfeature/flagd-core'
import type { EvaluationContext, FlagValueType, JsonValue } from '@openfeature/server-sdk'
import test from 'ava'
import { EtcdKitFlagProvider, EVALUATORS_KEY, type FlagDefinition } from '../src/index.js'
import { etcd, eventually, flagsOf, kit } from './helpers.js'

test.after.always(async () => (await etcd()).close())

const document = readFileSync(new URL('./fixtures/flagd-docs.json', import.meta.url), 'utf8')
const parsed = JSON.parse(document) as {
  flags: Record<string, FlagDefinition>
  $evaluators: Record<string, JsonValue>
}

function typeOf(definition: FlagDefinition): FlagValueType {
  const value = Object.values(definition.variants)[0]
  return typeof value === 'object' ? 'object' : (typeof value as FlagValueType)
}

/** Contexts that hit every branch: emails in and out of @faas.com, colours, names, versions, ids, keys. */
function contexts(): EvaluationContext[] {
  const out: EvaluationContext[] = [{}]
  for (let i = 0; i < 60; i++) {
    out.push({
      targetingKey: `user-${i}`,
      email: i % 3 === 0 ? `user${i}@faas.com` : `user${i}@example.com`,
      color: i % 4 === 0 ? 'yellow' : 'blue',
      user: { name: `name-${i * 7}` },
      version: `1.${i % 5}.${i % 3}`,
      id: i % 5 === 0 ? `abc-${i}` : i % 5 === 1 ? `${i}-xyz` : `id-${i}`,
    })
  }
  return out
}

test('targeting, fractional, $ref, sem_ver and string operators: the provider reading etcd gives what flagd-core gives for the same document', async (t) => {
  await using k = await kit()
  // one key per flag, and the shared evaluators in their own key, as a user writes them
  await flagsOf(k).setMany({
    ...Object.fromEntries(Object.entries(parsed.flags).map(([key, def]) => [key, JSON.stringify(def)])),
    [EVALUATORS_KEY]: JSON.stringify(parsed.$evaluators),
  })
  const provider = new EtcdKitFlagProvider({ kit: k, instanceId: 'instance-1' })
  await provider.initialize()
  t.deepEqual(provider.flagKeys, Object.keys(parsed.flags).sort())

  const reference = new FlagdCore()
  reference.setConfigurations(document)
  let compared = 0
  const variants = new Map<string, Set<string>>()
  for (const [key, definition] of Object.entries(parsed.flags)) {
    const type = typeOf(definition)
    const fallback = (
      type === 'object' ? {} : type === 'string' ? '' : type === 'number' ? 0 : false
    ) as never
    for (const context of contexts()) {
      const ours = provider.resolve(type, key, fallback, context)
      // the provider adds its instance context under the caller's: the reference gets the same
      const theirs = reference.resolve(type, key, fallback, { targetingKey: 'instance-1', ...context })
      t.deepEqual(
        { value: ours.value, variant: ours.variant, reason: ours.reason, errorCode: ours.errorCode },
        { value: theirs.value, variant: theirs.variant, reason: theirs.reason, errorCode: theirs.errorCode },
        `${key} with ${JSON.stringify(context)}`,
      )
      const seen = variants.get(key) ?? new Set()
      seen.add(String(ours.variant))
      variants.set(key, seen)
      compared++
    }
  }
  t.log(`${compared} evaluations compared`)
  // the contexts reach several outcomes of each rule (a comparison of constant answers would prove little)
  for (const key of [
    'fibAlgo',
    'headerColor',
    'fractional-flag',
    'fractional-by-targeting-key',
    'semver-flag',
    'starts-ends-flag',
  ])
    t.true(variants.get(key)!.size >= 2, `${key}: ${[...variants.get(key)!]}`)

  // the shared evaluators change: every flag using them follows
  const changed: string[][] = []
  provider.on('change', (flags) => changed.push(flags))
  await flagsOf(k).set(
    EVALUATORS_KEY,
    JSON.stringify({ emailWithFaas: { in: ['@other.com', { var: ['email'] }] } }),
  )
  await eventually(() => changed.length === 1, 'the change')
  t.deepEqual(changed[0], ['fibAlgo', 'headerColor'])
  t.is(provider.resolve<string>('string', 'fibAlgo', '', { email: 'a@other.com' }).value, 'binet')
  t.is(provider.resolve<string>('string', 'fibAlgo', '', { email: 'a@faas.com' }).value, 'recursive')
  await provider.onClose()
})
