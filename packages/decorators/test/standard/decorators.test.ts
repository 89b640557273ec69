import { clearDefaultKit, setDefaultKit } from '@etcdkit/core/integration'
import { Config, OnConfigChange } from '@etcdkit/decorators'
import { uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import { decoratorCases } from '../cases.js'
import { eventually, kits } from '../helpers.js'
import * as fixtures from './fixtures.js'

decoratorCases(test, fixtures, 'standard')

test('this directory is compiled as standard decorators', (t) => {
  const calls: unknown[][] = []
  const probe = (...args: unknown[]) => {
    calls.push(args)
  }
  class Probe {
    @probe
    method() {}
  }
  t.truthy(Probe)
  t.is(calls[0]?.length, 2, 'standard decorators get (value, context)')
  t.is((calls[0]?.[1] as DecoratorContext | undefined)?.kind, 'method')
})

// Standard decorators run per instance: no bindEtcdKit in the constructor is needed, and `accessor` works
test.serial(
  'standard: an instance follows the default kit with no binding call; accessor fields work',
  async (t) => {
    const [kit] = await kits(1)
    const key = `auto/${uniquePrefix('k').slice(0, -1)}`
    class Auto {
      @Config(key, { parse: Number, default: 1 })
      accessor size!: number

      @Config(key, { parse: Number, default: 1 })
      field!: number

      readonly seen: number[] = []

      @OnConfigChange(key, { parse: Number })
      changed(value: number) {
        this.seen.push(value)
      }
    }
    setDefaultKit(kit!)
    try {
      const auto = new Auto()
      t.is(auto.size, 1)
      await kit!.config.set(key, '6')
      await eventually(() => auto.size === 6 && auto.field === 6, 'both properties show 6')
      await eventually(() => auto.seen.includes(6), 'the handler ran once the instance was first used')
    } finally {
      clearDefaultKit(kit!)
      await kit!.close()
    }
  },
)
