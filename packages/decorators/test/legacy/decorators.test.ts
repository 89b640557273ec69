import { readFileSync } from 'node:fs'
import test from 'ava'
import { decoratorCases } from '../cases.js'
import * as fixtures from './fixtures.js'

decoratorCases(test, fixtures, 'legacy')

test('this directory is compiled with experimentalDecorators', (t) => {
  const calls: unknown[][] = []
  const probe = (...args: unknown[]) => {
    calls.push(args)
  }
  class Probe {
    @probe
    method() {}
  }
  t.truthy(Probe)
  t.is(calls[0]?.length, 3, 'legacy decorators get (prototype, name, descriptor)')
})

test('the legacy and standard fixtures are the same text', (t) => {
  const read = (mode: string) => readFileSync(new URL(`../${mode}/fixtures.ts`, import.meta.url), 'utf8')
  t.is(read('legacy'), read('standard'))
})
