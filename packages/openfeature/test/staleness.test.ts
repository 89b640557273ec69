import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { EtcdKit, silentLogger } from '@etcdkit/core'
import { startEtcd, uniquePrefix } from '@etcdkit/testing'
import { OpenFeature, ProviderEvents, ProviderStatus } from '@openfeature/server-sdk'
import test from 'ava'
import { EtcdKitFlagProvider, FlagAdmin } from '../src/index.js'
import { eventually, flagsOf } from './helpers.js'

let domains = 0
const domain = () => `stale-${process.pid}-${++domains}`

/** The provider events a client of `name` sees, in order. */
function recordEvents(name: string) {
  const seen: string[] = []
  const client = OpenFeature.getClient(name)
  for (const event of [ProviderEvents.Ready, ProviderEvents.Stale, ProviderEvents.Error])
    client.addHandler(event, () => void seen.push(event))
  return { client, seen }
}

test.serial(
  'PROVIDER_STALE while etcd is paused (SIGSTOP), PROVIDER_READY once it answers; flags keep their last value',
  async (t) => {
    await using etcd = await startEtcd()
    let resumed = true
    t.teardown(() => {
      if (!resumed) etcd.resume()
    })
    await using kit = new EtcdKit({
      endpoints: etcd.endpoints,
      namespace: uniquePrefix('stale'),
      logger: silentLogger,
    })
    await new FlagAdmin(kit).setBoolean('checkout', true)
    const provider = new EtcdKitFlagProvider({ kit })
    const name = domain()
    await OpenFeature.setProviderAndWait(name, provider)
    const { client, seen } = recordEvents(name)
    t.is(client.providerStatus, ProviderStatus.READY)
    // known current first: the watch confirmed by etcd
    await eventually(() => provider.state === 'ready', 'ready')
    seen.length = 0

    etcd.pause()
    resumed = false
    const pausedAt = Date.now()
    await eventually(() => seen.includes(ProviderEvents.Stale), 'PROVIDER_STALE', 15_000)
    t.log(`PROVIDER_STALE ${Date.now() - pausedAt} ms after SIGSTOP`)
    t.is(client.providerStatus, ProviderStatus.STALE)
    t.is(provider.state, 'stale')
    // the SDK still evaluates a STALE provider: the last good definitions answer
    t.true(await client.getBooleanValue('checkout', false))

    etcd.resume()
    resumed = true
    const resumedAt = Date.now()
    await eventually(() => seen.at(-1) === ProviderEvents.Ready, 'PROVIDER_READY', 15_000)
    t.log(`PROVIDER_READY ${Date.now() - resumedAt} ms after SIGCONT`)
    t.deepEqual(seen, [ProviderEvents.Stale, ProviderEvents.Ready])
    t.is(client.providerStatus, ProviderStatus.READY)
    await provider.onClose()
  },
)

test.serial(
  'with the kit config cache, flags boot from the local copy while etcd is down (STALE), then go live',
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'etcdkit-flags-cache-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    await using etcd = await startEtcd()
    const options = { namespace: uniquePrefix('boot'), service: 'orders', configCache: { dir, wait: 200 } }

    // a first run reads the flags and keeps a copy
    const first = new EtcdKit({ endpoints: etcd.endpoints, logger: silentLogger, ...options })
    await new FlagAdmin(first).setBoolean('checkout', true)
    const warm = new EtcdKitFlagProvider({ kit: first })
    await warm.initialize()
    // the flags prefix has a cache file of its own, beside the config prefix's
    const file = flagsOf(first).cacheFile!
    t.not(file, first.config.cacheFile)
    await eventually(
      () => existsSync(file) && readFileSync(file, 'utf8').includes('"checkout"'),
      'the cache is written',
    )
    await warm.onClose()
    await first.close()

    await etcd.stop()
    const kit = new EtcdKit({ endpoints: etcd.endpoints, logger: silentLogger, ...options })
    t.teardown(() => kit.close())
    const provider = new EtcdKitFlagProvider({ kit, timeout: 5_000 })
    const name = domain()
    const { client, seen } = recordEvents(name)
    const started = Date.now()
    await OpenFeature.setProviderAndWait(name, provider)
    t.log(`initialized from the cache in ${Date.now() - started} ms`)
    t.true(flagsOf(kit).fromCache)
    t.true(await client.getBooleanValue('checkout', false), 'the cached definition answers')
    await eventually(() => seen.includes(ProviderEvents.Stale), 'PROVIDER_STALE after READY')
    t.deepEqual(seen, [ProviderEvents.Ready, ProviderEvents.Stale])
    t.is(client.providerStatus, ProviderStatus.STALE)

    // a change made while this process could not see etcd
    await etcd.restart()
    const other = new EtcdKit({
      endpoints: etcd.endpoints,
      namespace: options.namespace,
      logger: silentLogger,
    })
    t.teardown(() => other.close())
    const changed: string[][] = []
    provider.on('change', (flags) => changed.push(flags))
    await new FlagAdmin(other).setBoolean('checkout', false)
    await eventually(
      async () => !(await client.getBooleanValue('checkout', true)),
      'the live definition',
      15_000,
    )
    await eventually(() => seen.at(-1) === ProviderEvents.Ready, 'PROVIDER_READY once current', 15_000)
    t.false(flagsOf(kit).fromCache)
    t.deepEqual(changed.flat(), ['checkout'])
    await provider.onClose()
  },
)

test.serial(
  'initialize times out while etcd is down (no cache), and the provider becomes READY when etcd answers',
  async (t) => {
    await using etcd = await startEtcd()
    await etcd.stop()
    const kit = new EtcdKit({
      endpoints: etcd.endpoints,
      namespace: uniquePrefix('late'),
      logger: silentLogger,
    })
    t.teardown(() => kit.close())
    const provider = new EtcdKitFlagProvider({ kit, timeout: 500 })
    const name = domain()
    const { client, seen } = recordEvents(name)
    const started = Date.now()
    await OpenFeature.setProviderAndWait(name, provider).catch(() => {})
    t.true(Date.now() - started < 3_000, 'bounded')
    t.is(client.providerStatus, ProviderStatus.ERROR)
    t.deepEqual(seen, [ProviderEvents.Error])
    await etcd.restart()
    await new FlagAdmin(kit).setBoolean('late', true)
    await eventually(() => seen.at(-1) === ProviderEvents.Ready, 'PROVIDER_READY when etcd answers', 15_000)
    t.is(client.providerStatus, ProviderStatus.READY)
    await eventually(async () => await client.getBooleanValue('late', false), 'the flag')
    await provider.onClose()
  },
)
