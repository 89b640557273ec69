// The console's HTTP API against what a hostile web page (or a rebinding domain) can make a browser send:
// crafted Host, Origin and Sec-Fetch-Site headers, missing tokens, writes without the page's CSRF token,
// binds beyond loopback. node:http, not fetch: undici would set Host and Origin itself.
import http from 'node:http'
import test, { type ExecutionContext } from 'ava'
import { isLoopbackAddress, parseHost } from '../src/guard.js'
import { startConsole } from '../src/index.js'
import { rawRequest } from './browser.js'
import { scene } from './helpers.js'

async function console_(t: ExecutionContext, token?: string) {
  const s = await scene(t, 'console-sec')
  const kit = s.kit()
  await kit.config.set('rate-limit', '100')
  const web = await startConsole(kit, { port: 0, host: '127.0.0.1', hostGiven: false, write: true, token })
  t.teardown(() => web.close())
  const port = Number(new URL(web.url).port)
  const own: Record<string, string> & { host: string } = { host: `127.0.0.1:${port}` }
  if (token) own.authorization = `Bearer ${token}`
  const html = (await rawRequest(port, 'GET', '/', own)).body
  const csrf = /<meta name="etcdkit-csrf" content="([^"]*)">/.exec(html)?.[1] ?? ''
  const history = await kit.config.history('rate-limit')
  return { kit, port, own, csrf, revision: history[0]!.revision }
}

/** Every route, reads and SSE included, and a path no route serves. */
const routes = (csrf: string, revision: string): [string, string, unknown?, Record<string, string>?][] => [
  ['GET', '/'],
  ['GET', '/api/snapshot'],
  ['GET', '/api/events'],
  ['GET', '/api/config/history?key=rate-limit'],
  ['PUT', '/api/config', { key: 'rate-limit', value: '666' }, { 'x-etcdkit-csrf': csrf }],
  ['DELETE', '/api/config', { key: 'rate-limit' }, { 'x-etcdkit-csrf': csrf }],
  ['POST', '/api/config/rollback', { key: 'rate-limit', revision }, { 'x-etcdkit-csrf': csrf }],
  ['GET', '/api/not-a-route'],
]

test('DNS rebinding: a Host that is not exactly this console is refused on every route, and nothing is written', async (t) => {
  const c = await console_(t)
  const rebound = [
    `127.0.0.1.evil.example:${c.port}`,
    `127.attacker.example:${c.port}`,
    `localhost.evil.example:${c.port}`,
    `evil.example:${c.port}`,
    'evil.example',
    `127.0.0.1:${c.port + 1}`,
    '127.0.0.1',
    `127.0.0.1:${c.port}.evil.example`,
    `user@127.0.0.1:${c.port}`,
    '',
  ]
  for (const host of rebound)
    for (const [method, path, body, extra] of routes(c.csrf, c.revision)) {
      const r = await rawRequest(c.port, method, path, { host, ...extra }, body)
      t.is(r.status, 421, `${method} ${path} with Host ${JSON.stringify(host)}`)
    }
  t.is(await c.kit.config.get('rate-limit'), '100')
  // its own names with its port are answered
  const page = await new Promise<http.IncomingMessage>((resolve, reject) =>
    http.get({ host: '127.0.0.1', port: c.port, path: '/' }, resolve).on('error', reject),
  )
  page.resume()
  t.is(page.headers['x-frame-options'], 'DENY')
  t.is(page.headers['content-security-policy'], "frame-ancestors 'none'")
  for (const host of [`127.0.0.1:${c.port}`, `localhost:${c.port}`, `LOCALHOST:${c.port}`, `[::1]:${c.port}`])
    t.is((await rawRequest(c.port, 'GET', '/api/snapshot', { host })).status, 200, host)
})

test('foreign origins are refused with 403 on every route, reads and SSE included; the own origin is answered', async (t) => {
  const c = await console_(t)
  const foreign: Record<string, string>[] = [
    { origin: 'http://evil.example' },
    { origin: `http://127.0.0.1.evil.example:${c.port}` },
    { origin: `http://localhost:${c.port}` }, // another origin of the same machine than the one the page came from
    { origin: `https://127.0.0.1:${c.port}` },
    { origin: 'null' },
    { 'sec-fetch-site': 'cross-site' },
    { 'sec-fetch-site': 'same-site' },
  ]
  for (const headers of foreign)
    for (const [method, path, body, extra] of routes(c.csrf, c.revision)) {
      const r = await rawRequest(c.port, method, path, { ...c.own, ...extra, ...headers }, body)
      t.is(r.status, 403, `${method} ${path} with ${JSON.stringify(headers)}`)
    }
  t.is(await c.kit.config.get('rate-limit'), '100')
  const own = { ...c.own, origin: `http://127.0.0.1:${c.port}`, 'sec-fetch-site': 'same-origin' }
  t.is((await rawRequest(c.port, 'GET', '/api/snapshot', own)).status, 200)
  t.is((await rawRequest(c.port, 'GET', '/api/events', own)).status, 200)
  const put = await rawRequest(
    c.port,
    'PUT',
    '/api/config',
    { ...own, 'x-etcdkit-csrf': c.csrf },
    { key: 'rate-limit', value: '250' },
  )
  t.is(put.status, 200, put.body)
  t.is(await c.kit.config.get('rate-limit'), '250')
})

test('writes need the anti-CSRF token the page carries; a missing or wrong one is refused with 403', async (t) => {
  const c = await console_(t)
  t.regex(c.csrf, /^[\w-]{40,}$/)
  for (const csrf of [undefined, '', 'guess', `${c.csrf}x`])
    for (const [method, path, body] of routes(c.csrf, c.revision).filter(([m]) => m !== 'GET')) {
      const r = await rawRequest(
        c.port,
        method,
        path,
        { ...c.own, ...(csrf === undefined ? {} : { 'x-etcdkit-csrf': csrf }) },
        body,
      )
      t.is(r.status, 403, `${method} ${path} with CSRF token ${JSON.stringify(csrf)}`)
      t.regex(r.body, /anti-CSRF/)
    }
  t.is(await c.kit.config.get('rate-limit'), '100')
  // a form post (no JSON) with the token is still refused
  const form = await rawRequest(
    c.port,
    'PUT',
    '/api/config',
    { ...c.own, 'x-etcdkit-csrf': c.csrf, 'content-type': 'text/plain' },
    undefined,
  )
  t.is(form.status, 415)
  const del = await rawRequest(
    c.port,
    'DELETE',
    '/api/config',
    { ...c.own, 'x-etcdkit-csrf': c.csrf },
    { key: 'rate-limit' },
  )
  t.is(del.status, 200, del.body)
  t.is(await c.kit.config.get('rate-limit'), undefined)
})

test('a token-protected console refuses every route without the token, and with a wrong one', async (t) => {
  const c = await console_(t, 's3cret')
  const auths: Record<string, string>[] = [{}, { authorization: 'Bearer wrong' }, { authorization: 's3cret' }]
  for (const auth of auths)
    for (const [method, path, body, extra] of routes(c.csrf, c.revision)) {
      const r = await rawRequest(c.port, method, path, { host: c.own.host, ...extra, ...auth }, body)
      t.is(r.status, 401, `${method} ${path} with ${JSON.stringify(auth)}`)
    }
  t.is((await rawRequest(c.port, 'GET', '/api/snapshot?token=wrong', { host: c.own.host })).status, 401)
  t.is((await rawRequest(c.port, 'GET', '/api/snapshot?token=s3cret', { host: c.own.host })).status, 200)
  t.is((await rawRequest(c.port, 'GET', '/api/events?token=s3cret', { host: c.own.host })).status, 200)
  t.is(await c.kit.config.get('rate-limit'), '100')
})

test('a bind beyond loopback needs --host and a token, decided on the parsed address, not on a name pattern', async (t) => {
  const s = await scene(t, 'console-bind')
  const kit = s.kit()
  const start = (host: string, hostGiven: boolean, token?: string) =>
    startConsole(kit, { port: 0, host, hostGiven, write: false, token })
  await t.throwsAsync(start('127.attacker.example', true), { message: /not loopback: give a --token/ })
  await t.throwsAsync(start('127.0.0.1.nip.io', true), { message: /not loopback: give a --token/ })
  await t.throwsAsync(start('0.0.0.0', true), { message: /not loopback: give a --token/ })
  await t.throwsAsync(start('::', true), { message: /not loopback: give a --token/ })
  await t.throwsAsync(start('0.0.0.0', false, 't'), { message: /only loopback without --host/ })
  // loopback addresses need neither
  for (const host of ['127.0.0.1', '127.0.0.2', '::1', 'localhost']) {
    const web = await start(host, false)
    await web.close()
  }
  // a wildcard bind with a token answers on loopback with the token, and still refuses foreign names
  const wide = await start('0.0.0.0', true, 'wide-token')
  t.teardown(() => wide.close())
  const port = Number(new URL(wide.url).port)
  const auth = { authorization: 'Bearer wide-token' }
  t.is((await rawRequest(port, 'GET', '/api/snapshot', { host: `127.0.0.1:${port}`, ...auth })).status, 200)
  t.is((await rawRequest(port, 'GET', '/api/snapshot', { host: `127.0.0.1:${port}` })).status, 401)
  t.is(
    (await rawRequest(port, 'GET', '/api/snapshot', { host: `127.0.0.1.evil.example:${port}`, ...auth }))
      .status,
    421,
  )
})

test('loopback and Host parsing: exact, on the parsed address', (t) => {
  for (const h of ['127.0.0.1', '127.9.9.9', '::1', '[::1]', 'localhost', 'LOCALHOST', '::ffff:127.0.0.1'])
    t.true(isLoopbackAddress(h), h)
  for (const h of [
    '127.attacker.example',
    '127.0.0.1.evil.example',
    'localhost.evil.example',
    '0.0.0.0',
    '::',
    '10.0.0.1',
    '127.1',
    '0x7f000001',
    '::ffff:10.0.0.1',
    '',
  ])
    t.false(isLoopbackAddress(h), h)
  t.deepEqual(parseHost('127.0.0.1:8087'), { name: '127.0.0.1', port: 8087 })
  t.deepEqual(parseHost('[::1]:8087'), { name: '::1', port: 8087 })
  t.deepEqual(parseHost('LocalHost'), { name: 'localhost', port: undefined })
  for (const bad of ['', 'a b', 'user@host:1', 'host:1:2', 'host:99999', '[::1', 'host/x', 'host:'])
    t.is(parseHost(bad), undefined, bad)
})
