// The web console in a real headless Chromium (Debian's `chromium`, driven by puppeteer-core).
import { existsSync, mkdirSync } from 'node:fs'
import http from 'node:http'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { eventually } from '@etcdkit/testing'
import test from 'ava'
import puppeteer, { type Browser, type Page } from 'puppeteer-core'
import { startConsole } from '../src/index.js'
import { scene } from './helpers.js'

const chromium =
  process.env.CHROMIUM_BIN ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find(existsSync)
const artifacts = fileURLToPath(new URL('../../../test-artifacts/', import.meta.url))

let browser: Browser | undefined
test.before(async () => {
  if (!chromium) return
  browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  })
  mkdirSync(artifacts, { recursive: true })
})
test.after.always(() => browser?.close())

async function open(t: { teardown(fn: () => unknown): void }, url: string): Promise<Page> {
  const page = await browser!.newPage()
  t.teardown(() => page.close())
  await page.setViewport({ width: 1200, height: 800 })
  await page.goto(url)
  await page.waitForSelector('#status.live', { timeout: 10_000 })
  return page
}

const text = (page: Page, selector: string) =>
  page.$eval(selector, (el) => el.textContent ?? '').catch(() => '')

test('the console lists services live, shows lock holders, and edits config only with --write', async (t) => {
  if (!chromium)
    return t.fail('chromium is not installed (apt-get install -y chromium): `npm test` installs it')
  const s = await scene(t, 'console')
  const kit = s.kit()
  await kit.register({
    service: 'orders',
    address: '10.0.0.7:3000',
    metadata: { version: '1.4.0', zone: 'eu-1' },
  })
  await kit.config.set('rate-limit', '100')
  const held = await kit.lock('jobs/report').acquire()
  const viewer = s.kit()

  const rw = await startConsole(viewer, {
    port: 0,
    host: '127.0.0.1',
    hostGiven: false,
    write: true,
    token: undefined,
  })
  t.teardown(() => rw.close())
  const page = await open(t, rw.url)
  t.regex(await text(page, 'h3[data-service="orders"]'), /orders \(1\)/)
  t.regex(await text(page, 'tr[data-address="10.0.0.7:3000"]'), /1\.4\.0.*eu-1/)
  t.regex(
    await text(page, 'tr[data-lock="jobs/report"][data-role="holder"]'),
    new RegExp(held.key.split('/').pop()!),
  )
  await page.screenshot({ path: join(artifacts, 'console-services.png'), fullPage: true })

  // a new instance appears without a reload, within a second
  const started = Date.now()
  await kit.register({ service: 'orders', address: '10.0.0.8:3000' })
  await page.waitForSelector('tr[data-address="10.0.0.8:3000"]', { timeout: 1_000 })
  t.log(`new instance shown ${Date.now() - started} ms after register() resolved`)

  // edit with confirmation: the prompt takes the new value, the confirm accepts it
  page.on('dialog', (d) => void (d.type() === 'prompt' ? d.accept('250') : d.accept()))
  await page.click('tr[data-config-key="rate-limit"] button.edit')
  await eventually(async () => (await kit.config.get('rate-limit')) === '250', 'the edit reached etcd')
  await page.waitForFunction(
    `document.querySelector('tr[data-config-key="rate-limit"] .value')?.textContent === '250'`,
    { timeout: 2_000 },
  )
  await page.screenshot({ path: join(artifacts, 'console-config.png'), fullPage: true })

  // the history view rolls back: 100 was the value before the edit
  await page.click('tr[data-config-key="rate-limit"] button.history')
  await page.waitForSelector('#history:not([hidden]) tr[data-revision]', { timeout: 2_000 })
  const rows = await page.$$eval('#history-table tr[data-revision]', (trs) =>
    trs.map((tr) => tr.textContent ?? ''),
  )
  t.regex(rows[0]!, /250/)
  t.regex(rows[1]!, /100/)
  await page.screenshot({ path: join(artifacts, 'console-history.png'), fullPage: true })
  await page.click('#history-table tr[data-revision]:nth-of-type(3) button.rollback')
  await eventually(async () => (await kit.config.get('rate-limit')) === '100', 'the rollback reached etcd')
  await page.waitForFunction(
    `document.querySelector('tr[data-config-key="rate-limit"] .value')?.textContent === '100'`,
    { timeout: 2_000 },
  )
  await kit.config.set('rate-limit', '250')

  // read-only: no edit buttons, and the API refuses
  const ro = await startConsole(viewer, {
    port: 0,
    host: '127.0.0.1',
    hostGiven: false,
    write: false,
    token: undefined,
  })
  t.teardown(() => ro.close())
  const roPage = await open(t, ro.url)
  t.is(await roPage.$('button.edit'), null)
  const refused = await roPage.evaluate(async () => {
    const res = await fetch('/api/config', {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ key: 'rate-limit', value: '1' }),
    })
    return res.status
  })
  t.is(refused, 403)
  t.is(await kit.config.get('rate-limit'), '250')
  await held.release()
  await roPage.waitForSelector('tr[data-lock="jobs/report"]', { hidden: true, timeout: 2_000 })
})

test('a token-protected console refuses requests without the token', async (t) => {
  const s = await scene(t, 'console-token')
  const web = await startConsole(s.kit(), {
    port: 0,
    host: '127.0.0.1',
    hostGiven: true,
    write: false,
    token: 's3cret',
  })
  t.teardown(() => web.close())
  const base = web.url.replace(/\?.*$/, '')
  t.is((await fetch(`${base}api/snapshot`)).status, 401)
  t.is((await fetch(`${base}api/snapshot?token=wrong`)).status, 401)
  t.is((await fetch(`${base}api/snapshot`, { headers: { authorization: 'Bearer s3cret' } })).status, 200)
  t.is((await fetch(web.url)).status, 200)
  // DNS rebinding: a request naming another host is refused, token or not
  const rebound = await new Promise<number>((resolve, reject) => {
    const url = new URL(`${base}api/snapshot`)
    http
      .get(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          headers: { host: 'evil.example', authorization: 'Bearer s3cret' },
        },
        (res) => {
          res.resume()
          resolve(res.statusCode ?? 0)
        },
      )
      .on('error', reject)
  })
  t.is(rebound, 421)
})
