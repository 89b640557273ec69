import { join } from 'node:path'
import { prefixConfig } from '@etcdkit/core/integration'
import { FlagAdmin, rolloutFlag } from '@etcdkit/openfeature'
import { eventually } from '@etcdkit/testing'
import test from 'ava'
import type { AuditEntry } from '../src/index.js'
import {
  artifacts,
  click,
  closeBrowser,
  csrfToken,
  launchBrowser,
  needChromium,
  open,
  rawRequest,
  serve,
  text,
} from './browser.js'
import { etcd, scene } from './helpers.js'

test.before(launchBrowser)
test.after.always(async () => {
  await closeBrowser()
  await (await etcd()).close()
})

test.serial(
  'flags: state, default, variants and targeting (as escaped JSON), invalid ones with the reason, live; history and a guarded rollback recorded as the operator',
  async (t) => {
    if (!needChromium(t)) return
    const s = await scene(t, 'console-flags')
    const kit = s.kit()
    const admin = new FlagAdmin(kit)
    const first = await admin.rollout('checkout', 10, { writer: 'alice' })
    await admin.rollout('checkout', 50, { writer: 'bob' })
    // a targeting rule whose strings are markup: shown as text, never as elements
    await admin.set('banner', {
      state: 'DISABLED',
      variants: { html: '<img src=x onerror="window.__pwned=1">', plain: 'hi' },
      defaultVariant: 'plain',
      targeting: { if: [{ '==': [{ var: 'email' }, '<script>window.__pwned=2</script>'] }, 'html', 'plain'] },
    })
    // written around FlagAdmin: not a definition
    await prefixConfig(kit, 'flags/').set('garbled', '{"state":"ON"<b>bold</b>')
    const audit: AuditEntry[] = []
    const web = await serve(t, s.kit(), { write: true, user: 'alice', audit: (e) => audit.push(e) })
    const page = await open(t, web.url)

    await page.waitForSelector('tr[data-flag-key="checkout"][data-state="ENABLED"]', { timeout: 5_000 })
    const checkout = await text(page, 'tr[data-flag-key="checkout"]')
    t.regex(checkout, /enabled/)
    t.regex(checkout, /on = true/)
    t.regex(checkout, /"fractional"/)
    t.regex(checkout, /5000/)
    t.regex(await text(page, 'tr[data-flag-key="banner"]'), /disabled/)
    t.regex(await text(page, 'tr[data-flag-key="banner"]'), /<script>window.__pwned=2<\/script>/)
    t.regex(await text(page, 'tr[data-flag-key="banner"]'), /<img src=x onerror/)
    t.regex(await text(page, 'tr[data-flag-key="garbled"][data-state="INVALID"]'), /invalid.*not JSON/s)
    t.is(await page.$('#flags img, #flags script, #flags b'), null, 'no markup from etcd became elements')
    t.is(await page.evaluate(() => (globalThis as { __pwned?: number }).__pwned), undefined)

    // live: a change in etcd is shown without a reload
    await admin.disable('checkout', { writer: 'carol' })
    await page.waitForSelector('tr[data-flag-key="checkout"][data-state="DISABLED"]', { timeout: 5_000 })

    // history: who wrote each definition; roll back to the first one, confirmed
    await click(page, 'tr[data-flag-key="checkout"] button.flag-history')
    await page.waitForSelector('#flag-history:not([hidden]) tr[data-revision]', { timeout: 5_000 })
    const rows = await page.$$eval('#flag-history-table tr[data-revision]', (trs) =>
      trs.map((tr) => tr.textContent ?? ''),
    )
    t.is(rows.length, 3)
    t.regex(rows[0]!, /carol/)
    t.regex(rows[2]!, /alice/)
    await page.screenshot({ path: join(artifacts, 'console-flags.png'), fullPage: true })
    await click(page, `#flag-history-table tr[data-revision="${first}"] button.flag-rollback`)
    await page.waitForSelector('#confirm[open]', { timeout: 5_000 })
    t.regex(await text(page, '#confirm'), new RegExp(`revision ${first} back to flag checkout`))
    await click(page, '#confirm-ok')
    await eventually(
      async () =>
        (await admin.get('checkout'))?.definition?.targeting !== undefined &&
        JSON.stringify((await admin.get('checkout'))?.definition) === JSON.stringify(rolloutFlag(10)),
      'the rollback reached etcd',
    )
    const [latest] = await admin.history('checkout', { limit: 1 })
    t.like(latest!.writer, { writer: 'etcdkit-console:alice', rollbackOf: first })
    await page.waitForSelector('tr[data-flag-key="checkout"][data-state="ENABLED"]', { timeout: 5_000 })
    await eventually(() => audit.length >= 1, 'the rollback was recorded')
    t.deepEqual(
      audit.map((e) => [e.writer, e.action, e.key, e.detail]),
      [['etcdkit-console:alice', 'flags.rollback', 'flags/checkout', `to revision ${first}`]],
    )

    // read-only: history, no rollback button; the route refuses
    const ro = await serve(t, s.kit())
    const roPage = await open(t, ro.url)
    await roPage.waitForSelector('tr[data-flag-key="checkout"]', { timeout: 5_000 })
    await click(roPage, 'tr[data-flag-key="checkout"] button.flag-history')
    await roPage.waitForSelector('#flag-history:not([hidden]) tr[data-revision]', { timeout: 5_000 })
    t.is(await roPage.$('button.flag-rollback'), null)
    const refused = await roPage.evaluate(
      async (csrf) => {
        const res = await fetch('/api/flags/rollback', {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-etcdkit-csrf': csrf },
          body: JSON.stringify({ key: 'checkout', revision: '1' }),
        })
        return res.status
      },
      await roPage.$eval('#cfg', (el) => JSON.parse(el.textContent ?? '{}').csrf as string),
    )
    t.is(refused, 403)
  },
)

test('the flag rollback route passes the console guard: no CSRF token, a foreign Origin or another Host is refused, nothing is written', async (t) => {
  const s = await scene(t, 'console-flags-guard')
  const kit = s.kit()
  const admin = new FlagAdmin(kit)
  const first = await admin.setBoolean('dark', true)
  const second = await admin.setBoolean('dark', false)
  const web = await serve(t, s.kit(), { write: true })
  const port = Number(new URL(web.url).port)
  const csrf = await csrfToken(web.url)
  const body = { key: 'dark', revision: first, expect: second }
  const send = async (headers: Record<string, string>) =>
    (await rawRequest(port, 'POST', '/api/flags/rollback', { host: `127.0.0.1:${port}`, ...headers }, body))
      .status
  t.is(await send({}), 403, 'without the CSRF token')
  t.is(await send({ 'x-etcdkit-csrf': csrf, origin: 'http://evil.example' }), 403, 'a foreign origin')
  t.is(await send({ 'x-etcdkit-csrf': csrf, host: `evil.example:${port}` }), 421, 'another Host')
  t.is((await admin.get('dark'))?.definition?.defaultVariant, 'off', 'nothing written')
  t.is(await send({ 'x-etcdkit-csrf': csrf }), 200)
  t.is((await admin.get('dark'))?.definition?.defaultVariant, 'on')
  // the flag changed since: the guarded rollback is refused (409)
  t.is(await send({ 'x-etcdkit-csrf': csrf }), 409)
})
