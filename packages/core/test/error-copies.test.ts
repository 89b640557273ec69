// Two copies of @etcdkit/core in one process (its ESM and CommonJS builds, as when an ESM app's dependency
// require()s it): `instanceof` recognises either copy's errors. And etcd3's errors are classified by class.
import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import test from 'ava'
import {
  ClientClosedError,
  EtcdPermissionDeniedError,
  GRPCDeadlineExceededError,
  GRPCResourceExhastedError,
  GRPCUnavailableError,
} from 'etcd3'
import { etcdError, failureKind } from '../src/errors.js'
import * as source from '../src/index.js'

type Core = typeof source
const core = join(dirname(fileURLToPath(import.meta.url)), '..')
let esm: Core
let cjs: Core

test.before(async () => {
  // the two builds of this checkout (tsc -b: nothing is compiled when they are current)
  const tsc = join(core, '..', '..', 'node_modules', '.bin', 'tsc')
  execFileSync(tsc, ['-b', join(core, 'tsconfig.build.json'), join(core, 'tsconfig.cjs.json')], {
    stdio: 'inherit',
  })
  writeFileSync(join(core, 'dist', 'cjs', 'package.json'), '{ "type": "commonjs" }\n')
  esm = (await import(pathToFileURL(join(core, 'dist', 'index.js')).href)) as Core
  cjs = createRequire(import.meta.url)(join(core, 'dist', 'cjs', 'index.js')) as Core
})

test('an error of one copy is an instance of the same class (and its bases) of the other copy', (t) => {
  t.not(esm.InvalidArgumentError, cjs.InvalidArgumentError, 'two copies: distinct classes')
  for (const [from, to] of [
    [esm, cjs],
    [cjs, esm],
    [source, cjs],
    [esm, source],
  ] as const) {
    const err = new from.InvalidArgumentError('bad')
    t.true(err instanceof to.InvalidArgumentError)
    t.true(err instanceof to.EtcdKitError)
    t.true(err instanceof Error)
    t.false(err instanceof to.ClosedError)
    const lost = new from.LockLostError('lost')
    t.true(lost instanceof to.LockLostError)
    t.false(lost instanceof to.InvalidArgumentError)
  }
  // not fooled by what is no kit error
  t.false(new Error('x') instanceof cjs.EtcdKitError)
  t.false((null as unknown) instanceof esm.EtcdKitError)
  t.false(({ code: 'ETCDKIT_CLOSED' } as unknown) instanceof esm.ClosedError)
  // a subclass of the user's own still works both ways within one copy
  class Mine extends esm.InvalidArgumentError {}
  t.true(new Mine('m') instanceof Mine)
  t.true(new Mine('m') instanceof cjs.InvalidArgumentError)
  t.false(new esm.InvalidArgumentError('x') instanceof Mine)
})

test("etcd3's errors are classified by their classes", (t) => {
  t.is(failureKind(new GRPCResourceExhastedError('received message larger than max')), 'large')
  t.is(failureKind(new GRPCResourceExhastedError('no words the regexes know')), 'large')
  t.is(failureKind(new EtcdPermissionDeniedError('nothing')), 'denied')
  t.is(failureKind(new ClientClosedError('svc')), 'closed')
  t.true(etcdError(new GRPCUnavailableError('down'), 'reading') instanceof source.EtcdUnavailableError)
  t.true(etcdError(new GRPCDeadlineExceededError('late'), 'reading') instanceof source.EtcdUnavailableError)
  t.true(etcdError(new Error('plain'), 'reading') instanceof source.EtcdUnavailableError)
})
