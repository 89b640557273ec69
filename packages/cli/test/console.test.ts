// The web console in a real headless Chromium (Debian's `chromium`, driven by puppeteer-core): live updates,
// freshness, TTLs, malformed values, the filter, the actions, and the 1,000-service page. Screenshots go to
// test-artifacts/, and the ones docs/CLI.md shows to docs/images/.
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { EtcdKit, silentLogger } from '@etcdkit/core'
import { eventually, startEtcd, uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import type { Page } from 'puppeteer-core'
import { type AuditEntry, startConsole } from '../src/index.js'
import {
  artifacts,
  click,
  closeBrowser,
  csrfToken,
  launchBrowser,
  needChromium,
  newPage,
  open,
  rawRequest,
  serve,
  text,
} from './browser.js'
import { scene } from './helpers.js'

const docsImages = fileURLToPath(new URL('../../../docs/images/', import.meta.url))

test.before(launchBrowser)
test.after.always(closeBrowser)

/** Opens a service's instances (services are listed collapsed; a page that lists them open needs nothing). */
async function expand(page: Page, service: string) {
  const sel = `tr.svc[data-service="${service}"] button.toggle[aria-expanded="false"]`
  await page.waitForSelector(`tr.svc[data-service="${service}"], h3[data-service="${service}"]`, {
    timeout: 5_000,
  })
  if (await page.$(sel)) await click(page, sel)
  if (await page.$(`tr.svc[data-service="${service}"]`))
    await page.waitForSelector(`tr[data-detail="${service}"]`, { timeout: 5_000 })
}

/** Accepts (or cancels) the page's confirmation dialog, once it is open; returns its text. */
async function confirmDialog(page: Page, accept = true): Promise<string> {
  await page.waitForSelector('#confirm[open]', { timeout: 5_000 })
  const said = await text(page, '#confirm')
  await click(page, accept ? '#confirm-ok' : '#confirm-cancel')
  await page.waitForSelector('#confirm:not([open])', { timeout: 5_000 })
  return said
}

test('defect 7 and live: custom metadata and session records are shown, instances appear without a reload', async (t) => {
  if (!needChromium(t)) return
  const s = await scene(t, 'console-live')
  const kit = s.kit()
  await kit.register({
    service: 'orders',
    address: '10.0.0.7:3000',
    metadata: {
      version: '1.4.0',
      zone: 'eu-1',
      tags: ['canary'],
      team: 'payments',
      build: { sha: 'abc123' },
    },
  })
  await kit.config.set('rate-limit', '100')
  const held = await kit.lock('jobs/report').acquire()
  const web = await serve(t, s.kit())
  const page = await open(t, web.url)
  await expand(page, 'orders')
  const row = await text(page, 'tr[data-address="10.0.0.7:3000"]')
  t.regex(row, /1\.4\.0.*eu-1.*canary/)
  // defect 7: custom metadata is shown
  t.regex(row, /team=.*payments/)
  t.regex(row, /build=.*abc123/)
  // the session record: which process, since when
  t.regex(row, /pid \d+ · since /)
  t.regex(await text(page, 'tr.svc[data-service="orders"]'), /orders.*1.*healthy.*eu-1.*1\.4\.0/)
  t.regex(
    await text(page, 'tr[data-lock="jobs/report"][data-role="holder"]'),
    new RegExp(held.key.split('/').pop()!),
  )
  await page.screenshot({ path: join(artifacts, 'console-services.png'), fullPage: true })

  const started = Date.now()
  await kit.register({ service: 'orders', address: '10.0.0.8:3000' })
  await page.waitForSelector('tr[data-address="10.0.0.8:3000"]', { timeout: 3_000 })
  t.log(`new instance shown ${Date.now() - started} ms after register() resolved`)
  await held.release()
  await page.waitForSelector('tr[data-lock="jobs/report"]', { hidden: true, timeout: 5_000 })
})

test("dialects: each instance shows its registry dialect; a dialect selector and dialect: in the filter show one dialect's services", async (t) => {
  if (!needChromium(t)) return
  const s = await scene(t, 'console-dialects')
  const kit = s.kit()
  await kit.register({
    service: 'orders',
    address: '10.0.0.7:3000',
    metadata: { version: '1.4.0' },
    dialects: ['etcd', 'kratos', 'go-micro'],
  })
  const put = (key: string, value: string) => kit.client.put(`${s.namespace}${key}`).value(value).exec()
  // the frameworks' own bytes (core/test/fixtures/dialects cites the sources)
  await put(
    '/microservices/helloworld/0',
    '{"id":"0","name":"helloworld","version":"v1.0.0","metadata":{"weight":"10"},"endpoints":["grpc://127.0.0.1:9000"]}',
  )
  await put(
    'kitex/registry-etcd/registry-etcd-test/127.0.0.1:8888',
    '{"network":"tcp","address":"127.0.0.1:8888","weight":66,"tags":{"hello":"world"}}',
  )
  // not a Kratos instance, under Kratos' root: listed in its service as unreadable, in its dialect
  await put('/microservices/orders/broken', '{"id":')
  const web = await serve(t, s.kit())
  const page = await open(t, web.url)
  await expand(page, 'orders')
  for (const dialect of ['etcd', 'kratos', 'go-micro'])
    t.regex(
      await text(page, `tr[data-address="10.0.0.7:3000"][data-dialect="${dialect}"]`),
      new RegExp(`10\\.0\\.0\\.7:3000.*${dialect}.*1\\.4\\.0`),
    )
  t.regex(await text(page, 'tr.unreadable[data-dialect="kratos"]'), /broken.*kratos/)
  t.regex(await text(page, 'tr.svc[data-service="orders"]'), /etcd, kratos, go-micro/)
  t.regex(await text(page, 'tr.svc[data-service="helloworld"]'), /kratos/)
  t.regex(await text(page, 'tr.svc[data-service="registry-etcd-test"]'), /kitex/)
  t.deepEqual(
    await page.$$eval('#dialect option', (els) => els.map((e) => (e as unknown as { value: string }).value)),
    ['', 'etcd', 'kratos', 'kitex', 'go-micro'],
  )

  // one dialect's services: the others and the other dialects' rows are hidden
  await page.select('#dialect', 'kratos')
  await page.waitForSelector('tr.svc[data-service="registry-etcd-test"]', { hidden: true, timeout: 3_000 })
  await page.waitForSelector('tr.svc[data-service="helloworld"]', { timeout: 3_000 })
  t.is(await page.$('tr[data-address="10.0.0.7:3000"][data-dialect="etcd"]'), null)
  t.truthy(await page.$('tr[data-address="10.0.0.7:3000"][data-dialect="kratos"]'))
  t.regex(await text(page, '#counts'), /kratos: 2 services/)
  // a service registered later, in the dialect shown, appears live
  await kit.register({ service: 'users', address: '10.0.0.9:80', dialects: ['kratos', 'kitex'] })
  await page.waitForSelector('tr.svc[data-service="users"]', { timeout: 3_000 })
  await page.screenshot({ path: join(artifacts, 'console-dialect-kratos.png'), fullPage: true })
  await page.select('#dialect', '')
  await page.waitForSelector('tr.svc[data-service="registry-etcd-test"]', { timeout: 3_000 })

  // the filter's dialect: field does the same
  await page.type('#filter', 'dialect:kitex')
  await page.waitForSelector('tr.svc[data-service="helloworld"]', { hidden: true, timeout: 3_000 })
  await page.waitForSelector('tr[data-address="127.0.0.1:8888"][data-dialect="kitex"]', { timeout: 3_000 })
  t.truthy(await page.$('tr[data-address="10.0.0.9:80"][data-dialect="kitex"]'))
  t.is(await page.$('tr[data-address="10.0.0.9:80"][data-dialect="kratos"]'), null)
})

test('defect 4: a malformed registration or session record never stops the page', async (t) => {
  if (!needChromium(t)) return
  const s = await scene(t, 'console-malformed')
  const kit = s.kit()
  const ns = s.namespace
  const put = (key: string, value: string) => kit.client.put(`${ns}${key}`).value(value).exec()
  // another tool's values: every field of an unexpected type
  await put('services/billing/10.0.0.20:80', '{"Op":0,"Addr":"10.0.0.20:80","Metadata":{"tags":"x"}}')
  await put(
    'services/billing/10.0.0.21:80',
    '{"Op":0,"Addr":"10.0.0.21:80","Metadata":{"version":{"major":3},"zone":7,"tags":[1,{"a":"<b>x</b>"}],"note":null}}',
  )
  // a weight that is no number is outside the bounds core reads (issue 30): the entry is unreadable, not picked
  await put('services/billing/10.0.0.26:80', '{"Op":0,"Addr":"10.0.0.26:80","Metadata":{"weight":"heavy"}}')
  await put(
    'services/billing/10.0.0.22:80',
    '{"Op":0,"Addr":"10.0.0.22:80","Metadata":["not","an","object"]}',
  )
  await put('services/billing/10.0.0.23:80', '10.0.0.23:80')
  await put('services/billing/10.0.0.24:80', 'not json at all {')
  const lease = kit.client.lease(30, { autoKeepAlive: false })
  const id = await lease.grant()
  t.teardown(() => lease.revoke().catch(() => {}))
  const hex = BigInt(id).toString(16)
  await kit.client
    .put(`${ns}sessions/${hex}`)
    .value('{"hostname":{"x":1},"pid":"one","startedAt":5}')
    .lease(id)
    .exec()
  await kit.client.put(`${ns}services/billing/10.0.0.25:80`).value('10.0.0.25:80').lease(id).exec()
  await kit.config.set('flag', '<script>alert(1)</script>')
  const web = await serve(t, s.kit())
  const page = await open(t, web.url)
  await expand(page, 'billing')
  t.regex(await text(page, 'tr[data-address="10.0.0.20:80"]'), /"x"/)
  const weird = await text(page, 'tr[data-address="10.0.0.21:80"]')
  t.regex(weird, /\{"major":3\}/)
  t.regex(weird, /<b>x<\/b>/) // shown as text, not markup
  t.is(await page.$('tr[data-address="10.0.0.21:80"] b'), null)
  t.truthy(await page.$('tr[data-address="10.0.0.25:80"]'))
  // a value that is no registration at all is listed in its service, marked unreadable, with the reason
  t.regex(
    await text(page, 'tr[data-address="10.0.0.24:80"][data-health="unreadable"]'),
    /not json at all \{.*unreadable/,
  )
  t.truthy(await page.$('tr[data-address="10.0.0.26:80"][data-health="unreadable"]'))
  t.regex(await text(page, 'tr.svc[data-service="billing"]'), /2 unreadable/)
  t.regex(await text(page, 'tr[data-config-key="flag"]'), /<script>alert\(1\)<\/script>/)
  await page.screenshot({ path: join(artifacts, 'console-malformed.png'), fullPage: true })

  // and the page goes on: a new instance, a config change, the badge still live
  await kit.register({ service: 'orders', address: '10.0.0.9:3000' })
  await page.waitForSelector('tr.svc[data-service="orders"]', { timeout: 5_000 })
  await kit.config.set('flag', 'on')
  await page.waitForFunction(
    `document.querySelector('tr[data-config-key="flag"]')?.textContent.includes('on')`,
    { timeout: 5_000 },
  )
  t.is(await text(page, '#status'), 'live')
})

test('defect 5: lease TTLs are read again from etcd, they do not count down to 0 while the kit keeps its lease', async (t) => {
  if (!needChromium(t)) return
  const s = await scene(t, 'console-ttl')
  const kit = s.kit({ ttl: 4 })
  await kit.register({ service: 'ttl', address: '10.0.0.1:1' })
  const web = await serve(t, s.kit(), { live: { ttlEvery: 1_000 } })
  const page = await open(t, web.url)
  await expand(page, 'ttl')
  const cell = 'tr[data-address="10.0.0.1:1"] td.ttl'
  // three TTLs later the kit has kept its lease alive all along: etcd says some seconds are left
  await new Promise((r) => setTimeout(r, 9_000))
  const shown = Number.parseInt(await text(page, cell), 10)
  t.log(`TTL shown after 9 s: ${await text(page, cell)}`)
  t.true(shown >= 1 && shown <= 4, `shown ${shown}`)
  // a lease that etcd expires is shown as expired
  const lease = kit.client.lease(2, { autoKeepAlive: false })
  const id = await lease.grant()
  await kit.client.put(`${s.namespace}services/ttl/10.0.0.2:2`).value('10.0.0.2:2').lease(id).exec()
  await page.waitForSelector('tr[data-address="10.0.0.2:2"]', { timeout: 5_000 })
  await page.waitForSelector('tr[data-address="10.0.0.2:2"]', { hidden: true, timeout: 8_000 })
})

test.serial(
  'defect 6: "stale since" while etcd is paused, "disconnected" when the stream drops, and it reconnects',
  async (t) => {
    if (!needChromium(t)) return
    const etcd = await startEtcd()
    t.teardown(() => etcd.close())
    const kit = new EtcdKit({
      endpoints: etcd.endpoints,
      namespace: uniquePrefix('stale'),
      logger: silentLogger,
    })
    t.teardown(() => kit.close())
    await kit.config.set('k', 'v')
    const web = await startConsole(kit, {
      port: 0,
      host: '127.0.0.1',
      hostGiven: false,
      write: false,
      token: undefined,
    })
    let closed = false
    t.teardown(() => (closed ? undefined : web.close()))
    const page = await open(t, web.url)
    const paused = Date.now()
    etcd.pause()
    await page.waitForFunction(`document.getElementById('status').textContent.startsWith('stale since')`, {
      timeout: 10_000,
    })
    t.log(`"stale since" shown ${Date.now() - paused} ms after etcd was paused`)
    await page.screenshot({ path: join(artifacts, 'console-stale.png') })
    etcd.resume()
    await page.waitForSelector('#status.live', { timeout: 15_000 })

    const port = Number(new URL(web.url).port)
    closed = true
    await web.close()
    await page.waitForFunction(`document.getElementById('status').textContent.startsWith('disconnected')`, {
      timeout: 5_000,
    })
    await page.screenshot({ path: join(artifacts, 'console-disconnected.png') })
    const again = await startConsole(kit, {
      port,
      host: '127.0.0.1',
      hostGiven: false,
      write: false,
      token: undefined,
    })
    t.teardown(() => again.close())
    await page.waitForSelector('#status.live', { timeout: 10_000 })
    t.pass()
  },
)

test.serial(
  'search and filter: by service, address, version, zone, metadata, process; keyboard; 760 px',
  async (t) => {
    if (!needChromium(t)) return
    const s = await scene(t, 'console-filter')
    const a = s.kit()
    const b = s.kit()
    await a.register({
      service: 'orders',
      address: '10.0.1.1:80',
      metadata: { version: '1.4.0', zone: 'eu-1' },
    })
    await a.register({
      service: 'orders',
      address: '10.0.1.2:80',
      metadata: { version: '1.5.0-rc.1', zone: 'eu-2', team: 'checkout' },
    })
    await b.register({
      service: 'billing',
      address: '10.0.2.1:80',
      metadata: { version: '2.0.0', zone: 'us-1', tags: ['pci'] },
    })
    await b.register({
      service: 'search-with-a-very-long-name-that-must-wrap-somewhere-in-a-narrow-window',
      address: '[2001:db8::1]:8080',
    })
    const web = await serve(t, s.kit())
    const page = await open(t, web.url)
    const services = () => page.$$eval('tr.svc', (trs) => trs.map((tr) => tr.getAttribute('data-service')))
    const filter = async (q: string) => {
      await page.$eval('#filter', (el) => ((el as unknown as { value: string }).value = ''))
      await page.type('#filter', q)
      await page.waitForFunction(`document.getElementById('counts').textContent.includes('match')`, {
        timeout: 2_000,
      })
      await new Promise((r) => setTimeout(r, 150))
    }
    t.is((await services()).length, 3)
    await filter('zone:eu-2')
    t.deepEqual(await services(), ['orders'])
    t.truthy(await page.$('tr[data-address="10.0.1.2:80"]'))
    t.is(await page.$('tr[data-address="10.0.1.1:80"]'), null)
    await filter('meta:team=')
    t.deepEqual(await services(), ['orders'])
    await filter('version:2.0')
    t.deepEqual(await services(), ['billing'])
    await filter('tag:pci')
    t.deepEqual(await services(), ['billing'])
    await filter('10.0.1.1')
    t.deepEqual(await services(), ['orders'])
    await filter(`process:pid ${process.pid}`.replace('pid ', ''))
    t.is((await services()).length, 3)
    await filter('nothing-like-this')
    t.regex(await text(page, '#services'), /nothing matches/)
    await page.$eval('#filter', (el) => ((el as unknown as { value: string }).value = ''))
    await page.type('#filter', ' ')
    await page.waitForFunction(`!document.getElementById('counts').textContent.includes('match')`, {
      timeout: 2_000,
    })

    // keyboard: "/" focuses the filter; Tab reaches a service's toggle, Enter opens it
    await click(page, 'h1')
    await page.keyboard.press('/')
    t.is(await page.evaluate('document.activeElement?.id'), 'filter')
    await page.focus('tr.svc[data-service="billing"] button.toggle')
    await page.keyboard.press('Enter')
    await page.waitForSelector('tr[data-detail="billing"]', { timeout: 5_000 })

    // 760 px: nothing wider than the window, long values wrap
    await page.setViewport({ width: 760, height: 900 })
    await expand(page, 'search-with-a-very-long-name-that-must-wrap-somewhere-in-a-narrow-window')
    const overflow = Number(await page.evaluate('document.documentElement.scrollWidth'))
    t.true(overflow <= 760, `page is ${overflow} px wide at 760 px`)
    await page.screenshot({ path: join(artifacts, 'console-760px.png'), fullPage: true })
  },
)

test.serial(
  'actions: drain honoured by the owning kit (refused without an etcdkit owner), deregister a stale key, edit JSON in the editor, diff, roll back; all confirmed and recorded as the operator',
  async (t) => {
    if (!needChromium(t)) return
    const s = await scene(t, 'console-actions')
    const kit = s.kit()
    const ns = s.namespace
    await kit.register({ service: 'orders', address: '10.0.0.7:3000' })
    // a stale key: no lease (a crashed tool wrote it), and a key owned by something that is not an etcdkit
    await kit.client.put(`${ns}services/orders/10.9.9.9:1`).value('10.9.9.9:1').exec()
    const lease = kit.client.lease(30)
    const id = await lease.grant()
    t.teardown(() => lease.revoke().catch(() => {}))
    await kit.client.put(`${ns}services/legacy/10.0.0.50:80`).value('10.0.0.50:80').lease(id).exec()
    await kit.config.set('limits', '{"rate":100}')
    const audit: AuditEntry[] = []
    const web = await serve(t, s.kit(), { write: true, user: 'alice', audit: (e) => audit.push(e) })
    const page = await open(t, web.url)
    t.regex(await text(page, '#identity'), /alice/)

    // deregister: cancelled first (nothing happens), then confirmed
    await expand(page, 'orders')
    t.is(await page.$('tr[data-address="10.0.0.7:3000"] button.deregister'), null) // a live etcdkit's key
    await click(page, 'tr[data-address="10.9.9.9:1"] button.deregister')
    t.regex(await confirmDialog(page, false), /Delete the registration key/)
    t.is((await kit.client.get(`${ns}services/orders/10.9.9.9:1`).exec()).kvs.length, 1)
    await click(page, 'tr[data-address="10.9.9.9:1"] button.deregister')
    await confirmDialog(page)
    await page.waitForSelector('tr[data-address="10.9.9.9:1"]', { hidden: true, timeout: 5_000 })
    t.is((await kit.client.get(`${ns}services/orders/10.9.9.9:1`).exec()).kvs.length, 0)
    // an unreadable value: deregistered by its value (the page has no revision of it)
    await kit.client.put(`${ns}services/orders/10.9.9.8:1`).value('{broken').exec()
    await page.waitForSelector('tr[data-address="10.9.9.8:1"][data-health="unreadable"]', { timeout: 5_000 })
    await click(page, 'tr[data-address="10.9.9.8:1"] button.deregister')
    t.regex(await confirmDialog(page), /not a registration/)
    await page.waitForSelector('tr[data-address="10.9.9.8:1"]', { hidden: true, timeout: 5_000 })
    t.is((await kit.client.get(`${ns}services/orders/10.9.9.8:1`).exec()).kvs.length, 0)

    // drain: confirmed, then honoured by the owning kit, which writes weight 0 itself; undrain restores it
    await click(page, 'tr[data-address="10.0.0.7:3000"] button.drain')
    t.regex(await confirmDialog(page), /take it out of traffic/)
    await page.waitForSelector('tr[data-address="10.0.0.7:3000"][data-health="draining"]', {
      timeout: 10_000,
    })
    t.regex(await text(page, 'tr[data-address="10.0.0.7:3000"]'), /drained by etcdkit-console:alice/)
    await page.screenshot({ path: join(artifacts, 'console-drained.png'), fullPage: true })
    await click(page, 'tr[data-address="10.0.0.7:3000"] button.undrain')
    await confirmDialog(page)
    await page.waitForSelector('tr[data-address="10.0.0.7:3000"][data-health="healthy"]', { timeout: 10_000 })

    // drain: the owner of legacy is not an etcdkit: refused with the reason
    const refused = await page.evaluate(
      async (csrf) => {
        const res = await fetch('/api/drain', {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-etcdkit-csrf': csrf },
          body: JSON.stringify({ key: 'services/legacy/10.0.0.50:80' }),
        })
        return { status: res.status, body: (await res.json()) as { error: string } }
      },
      await page.$eval('#cfg', (el) => JSON.parse(el.textContent ?? '{}').csrf as string),
    )
    t.is(refused.status, 409)
    t.regex(refused.body.error, /not an etcdkit/)

    // edit: invalid JSON cannot be sent; valid JSON is confirmed with a diff, then written as alice
    await click(page, 'tr[data-config-key="limits"] button.edit')
    await page.waitForSelector('#editor[open]')
    t.true(await page.$eval('#editor-json', (el) => (el as unknown as { checked: boolean }).checked))
    await page.$eval('#editor-value', (el) => ((el as unknown as { value: string }).value = ''))
    await page.type('#editor-value', '{"rate": 250,\n "burst": ')
    t.regex(await text(page, '#editor-error'), /not valid JSON/)
    t.true(await page.$eval('#editor-save', (el) => (el as unknown as { disabled: boolean }).disabled))
    await page.type('#editor-value', '50}')
    t.false(await page.$eval('#editor-save', (el) => (el as unknown as { disabled: boolean }).disabled))
    await click(page, '#editor-save')
    const asked = await confirmDialog(page)
    t.regex(asked, /alice/)
    await eventually(
      async () => (await kit.config.get('limits'))?.includes('250') === true,
      'the edit reached etcd',
    )
    const [latest] = await kit.config.history('limits')
    t.is(latest!.writer?.writer, 'etcdkit-console:alice')
    await page.screenshot({ path: join(artifacts, 'console-config.png'), fullPage: true })

    // history: a diff between revisions, and a rollback, confirmed
    await click(page, 'tr[data-config-key="limits"] button.history')
    await page.waitForSelector('#history:not([hidden]) tr[data-revision]', { timeout: 5_000 })
    t.regex(await text(page, '#diff .add'), /250/)
    t.regex(await text(page, '#diff .del'), /100/)
    await page.screenshot({ path: join(artifacts, 'console-history.png'), fullPage: true })
    await click(page, '#history-table tr[data-revision]:nth-of-type(3) button.rollback')
    await confirmDialog(page)
    await eventually(
      async () => (await kit.config.get('limits')) === '{"rate":100}',
      'the rollback reached etcd',
    )
    // the console records a write once etcd's answer reaches it, which may come after a reader saw the value
    await eventually(() => audit.length >= 6, 'the rollback was recorded')
    t.deepEqual(
      audit.map((e) => [e.writer, e.action, e.key]),
      [
        ['etcdkit-console:alice', 'deregister', 'services/orders/10.9.9.9:1'],
        ['etcdkit-console:alice', 'deregister', 'services/orders/10.9.9.8:1'],
        ['etcdkit-console:alice', 'drain', 'services/orders/10.0.0.7:3000'],
        ['etcdkit-console:alice', 'undrain', 'services/orders/10.0.0.7:3000'],
        ['etcdkit-console:alice', 'config.set', 'limits'],
        ['etcdkit-console:alice', 'config.rollback', 'limits'],
      ],
    )

    // read-only: no action buttons, and the API refuses
    const ro = await serve(t, s.kit())
    const roPage = await open(t, ro.url)
    await expand(roPage, 'orders')
    t.is(await roPage.$('button.edit, button.drain, button.deregister'), null)
  },
)

test.serial('1,000 services and 10,000 instances: first render and per-update cost', async (t) => {
  if (!needChromium(t)) return
  const s = await scene(t, 'console-scale')
  const kit = s.kit()
  const ns = s.namespace
  t.teardown(() => kit.client.delete().prefix(ns).exec())
  const zones = ['eu-1', 'eu-2', 'us-1', 'ap-1']
  const puts: [string, string][] = []
  for (let svc = 0; svc < 1_000; svc++)
    for (let i = 0; i < 10; i++) {
      const address = `10.${svc >> 8}.${svc & 255}.${i + 1}:8080`
      const metadata = { version: `1.${i % 3}.0`, zone: zones[(svc + i) % 4], team: `team-${svc % 17}` }
      puts.push([
        `${ns}services/svc-${String(svc).padStart(4, '0')}/${address}`,
        JSON.stringify({ Op: 0, Addr: address, Metadata: metadata }),
      ])
    }
  for (let i = 0; i < puts.length; i += 128) {
    const txn = kit.client.if(`${ns}x`, 'Version', '>', -1)
    await txn.then(...puts.slice(i, i + 128).map(([k, v]) => kit.client.put(k).value(v))).commit()
  }
  const web = await serve(t, s.kit())
  const page = await newPage(t)
  const started = Date.now()
  await page.goto(web.url)
  await page.waitForSelector('tr.svc[data-service="svc-0000"]', { timeout: 20_000 })
  const firstRender = Date.now() - started
  const firstJs = Number(await page.evaluate('window.__lastRenderMs'))
  t.regex(await text(page, '#counts'), /1000 services · 10000 instances/)

  // one change: one more instance; measured from the put to the row on screen, and the page's own work
  const updates: number[] = []
  const js: number[] = []
  for (let n = 0; n < 5; n++) {
    const t0 = Date.now()
    await kit.register({ service: 'svc-0000', address: `10.99.0.${n + 1}:1` })
    await page.waitForFunction(
      `document.querySelector('tr.svc[data-service="svc-0000"] .count')?.textContent === '${11 + n}'`,
      { timeout: 5_000 },
    )
    updates.push(Date.now() - t0)
    js.push(Number(await page.evaluate('window.__lastRenderMs')))
  }
  // filtering 10,000 instances as the operator types
  const f0 = Date.now()
  await page.type('#filter', 'zone:ap-1 team-3')
  await page.waitForFunction(`document.getElementById('counts').textContent.includes('match')`, {
    timeout: 5_000,
  })
  const filterMs = Date.now() - f0
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
  t.log(
    `first render ${firstRender} ms after navigation (page script ${firstJs.toFixed(0)} ms); ` +
      `per update: ${median(updates)} ms put-to-screen median, page script ${median(js).toFixed(0)} ms median; ` +
      `filter typed and shown in ${filterMs} ms`,
  )
  t.true(firstRender < 10_000, `first render took ${firstRender} ms`)
  t.true(median(js) < 1_000, `an update cost the page ${median(js)} ms`)
  await page.screenshot({ path: join(artifacts, 'console-1000-services.png') })
})

test.serial('docs/CLI.md screenshot: a demo scene, regenerated by this run', async (t) => {
  if (!needChromium(t)) return
  const s = await scene(t, 'console-docs')
  const a = s.kit()
  const b = s.kit()
  await a.register({
    service: 'orders',
    address: '10.0.0.7:3000',
    metadata: { version: '1.4.0', zone: 'eu-1', team: 'checkout' },
  })
  await b.register({
    service: 'orders',
    address: '10.0.0.8:3000',
    metadata: { version: '1.5.0', zone: 'eu-2', weight: 0 },
  })
  await b.register({
    service: 'billing',
    address: '10.0.1.3:8080',
    metadata: { version: '2.0.1', zone: 'eu-1', tags: ['pci'] },
  })
  await a.config.set('rate-limit', '100')
  await a.config.set('orders/features', '{"newCheckout": true}')
  const held = await a.lock('jobs/report').acquire()
  t.teardown(() => held.release())
  const web = await serve(t, s.kit(), { write: true, user: 'alice' })
  const page = await open(t, web.url, 1100)
  await expand(page, 'orders')
  mkdirSync(docsImages, { recursive: true })
  await page.screenshot({ path: join(docsImages, 'console.png'), fullPage: true })
  await page.screenshot({ path: join(artifacts, 'console.png'), fullPage: true })
  t.pass()
})

test('the renderer never throws on any value: random snapshots of every shape, each section on its own', async (t) => {
  if (!needChromium(t)) return
  const s = await scene(t, 'console-fuzz')
  const web = await serve(t, s.kit(), { write: true })
  const page = await open(t, web.url)
  const errors: string[] = []
  page.on('pageerror', (err) => errors.push(String(err)))
  // every field of a snapshot replaced by values of every type JSON can carry, and then some
  const result = await page.evaluate(`(() => {
    const odd = [null, 0, -1, 1e308, NaN, true, '', 'x'.repeat(5000), '<img src=x onerror=alert(1)>', [], [1, [2]], {}, { a: { b: null } }, { __proto__: { x: 1 } }, '\\u001b[31m'];
    let seed = 7;
    const pick = () => odd[(seed = (seed * 1103515245 + 12345) % 2147483648) % odd.length];
    const rowOf = () => ({ service: pick(), address: pick(), key: pick(), lease: pick(), weight: pick(), ttl: pick(), modRevision: pick(),
      metadata: Math.random() < 0.5 ? pick() : { version: pick(), zone: pick(), tags: pick(), weight: pick(), other: pick() },
      process: Math.random() < 0.5 ? pick() : { hostname: pick(), pid: pick(), startedAt: pick(), service: pick(), address: pick() } });
    let thrown = 0, sectionErrors = 0;
    for (let i = 0; i < 300; i++) {
      const snap = i % 10 === 0 ? pick() : {
        at: pick(), services: i % 7 === 0 ? pick() : Array.from({ length: 5 }, rowOf),
        queues: i % 5 === 0 ? pick() : [{ name: pick(), kind: pick(), contenders: [{ lease: pick(), createRevision: pick(), value: pick(), process: pick() }, pick()] }, pick()],
        config: i % 3 === 0 ? pick() : [{ key: pick(), value: pick(), service: pick() }, pick()],
        drains: [{ key: pick(), record: pick() }, pick()],
        unreadable: i % 4 === 0 ? pick() : [{ key: pick(), service: pick(), value: pick(), reason: pick() }, pick()],
      };
      try { take(snap); render(); } catch (e) { thrown++; }
      sectionErrors += document.querySelectorAll('.section-error').length;
      query = parseQuery(String(pick()));
    }
    query = [];
    take({ at: new Date().toISOString(), services: [{ service: 'ok', address: '10.0.0.1:1', key: 'services/ok/10.0.0.1:1', lease: '', weight: 1, metadata: {} }], queues: [], config: [], drains: [] });
    render();
    return { thrown, sectionErrors, img: document.querySelectorAll('img').length };
  })()`)
  t.deepEqual(result, { thrown: 0, sectionErrors: 0, img: 0 })
  t.deepEqual(errors, [])
  t.truthy(await page.$('tr.svc[data-service="ok"]'))
})

test('the action routes pass the console guard: no CSRF token or a foreign Origin is refused, nothing is written', async (t) => {
  const s = await scene(t, 'console-actions-guard')
  const kit = s.kit()
  await kit.client.put(`${s.namespace}services/orders/10.9.9.9:1`).value('10.9.9.9:1').exec()
  const web = await serve(t, s.kit(), { write: true })
  const port = Number(new URL(web.url).port)
  const csrf = await csrfToken(web.url)
  const [kv] = (await kit.client.get(`${s.namespace}services/orders/10.9.9.9:1`).exec()).kvs
  const body = { key: 'services/orders/10.9.9.9:1', modRevision: kv!.mod_revision }
  const send = async (path: string, method: string, headers: Record<string, string>) =>
    (await rawRequest(port, method, path, { host: `127.0.0.1:${port}`, ...headers }, body)).status
  for (const [path, method] of [
    ['/api/deregister', 'POST'],
    ['/api/drain', 'POST'],
    ['/api/drain', 'DELETE'],
  ] as const) {
    t.is(await send(path, method, {}), 403, `${method} ${path} without the CSRF token`)
    t.is(
      await send(path, method, { 'x-etcdkit-csrf': csrf, origin: 'http://evil.example' }),
      403,
      `${method} ${path} from a foreign origin`,
    )
  }
  t.is((await kit.client.get(`${s.namespace}services/orders/10.9.9.9:1`).exec()).kvs.length, 1)
  t.is(await send('/api/deregister', 'POST', { 'x-etcdkit-csrf': csrf }), 200)
  t.is((await kit.client.get(`${s.namespace}services/orders/10.9.9.9:1`).exec()).kvs.length, 0)
})
