// What the console's tests share: a real headless Chromium (Debian's `chromium`, driven by puppeteer-core),
// a console served for a test, and raw HTTP requests with exactly the headers a hostile page could send.
import { existsSync, mkdirSync } from 'node:fs'
import http from 'node:http'
import { fileURLToPath } from 'node:url'
import type { EtcdKit } from '@etcdkit/core'
import type { ExecutionContext } from 'ava'
import puppeteer, { type Browser, type Page } from 'puppeteer-core'
import { type ConsoleOptions, startConsole } from '../src/index.js'

const chromium =
  process.env.CHROMIUM_BIN ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find(existsSync)
/** Screenshots a run leaves for a human to look at. */
export const artifacts = fileURLToPath(new URL('../../../test-artifacts/', import.meta.url))

let browser: Browser | undefined

/** Starts the browser (call from `test.before`); nothing when Chromium is missing (`needChromium` says so). */
export async function launchBrowser() {
  if (!chromium) return
  browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  })
  mkdirSync(artifacts, { recursive: true })
}

export async function closeBrowser() {
  await browser?.close()
  browser = undefined
}

/** Fails the test, saying what to install, when there is no Chromium: a page test is never skipped. */
export function needChromium(t: ExecutionContext): boolean {
  if (chromium) return true
  t.fail('chromium is not installed (apt-get install -y chromium): `npm test` installs it')
  return false
}

/** A blank page, closed by the test's teardown. */
export async function newPage(t: ExecutionContext, width = 1200): Promise<Page> {
  const page = await browser!.newPage()
  t.teardown(() => page.close())
  await page.setViewport({ width, height: 900 })
  return page
}

/** Opens the console at `url` in a new page, once its event stream is live. */
export async function open(t: ExecutionContext, url: string, width = 1200): Promise<Page> {
  const page = await newPage(t, width)
  await page.goto(url)
  // keyboard input goes to the front page: tests that type must not share the window's focus
  await page.bringToFront()
  await page.waitForSelector('#status.live', { timeout: 10_000 })
  return page
}

/** A console for `kit` on a free loopback port, closed by the test's teardown. */
export async function serve(t: ExecutionContext, kit: EtcdKit, options: Partial<ConsoleOptions> = {}) {
  const web = await startConsole(kit, {
    port: 0,
    host: '127.0.0.1',
    hostGiven: false,
    write: false,
    token: undefined,
    ...options,
  })
  t.teardown(() => web.close())
  return web
}

export const text = (page: Page, selector: string) =>
  page.$eval(selector, (el) => el.textContent ?? '').catch(() => '')

/**
 * Clicks `selector`; again if the page re-rendered the element between finding and clicking it (a live
 * page rebuilds a section when a snapshot changes it).
 */
export async function click(page: Page, selector: string) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await page.click(selector)
    } catch (err) {
      if (attempt >= 5 || !/detached|not clickable|No element found/.test(String(err))) throw err
      await new Promise((r) => setTimeout(r, 100))
    }
  }
}

/** The page's anti-CSRF token, as the console's HTML hands it to its own script. */
export async function csrfToken(url: string): Promise<string> {
  const html = await (await fetch(url)).text()
  return /<meta name="etcdkit-csrf" content="([^"]*)">/.exec(html)?.[1] ?? ''
}

export interface Answer {
  status: number
  body: string
}

/**
 * One request to 127.0.0.1:`port` with exactly these headers (no Host unless given: node:http, not fetch,
 * which would set Host and Origin itself); a JSON body with its length (node:http would send a DELETE's
 * body unchunked and unannounced, as a second request). An SSE answer is cut after its head.
 */
export function rawRequest(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: unknown,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body)
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        setHost: false,
        headers: {
          ...(payload === undefined
            ? {}
            : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) }),
          ...headers,
        },
      },
      (res) => {
        let text = ''
        if ((res.headers['content-type'] ?? '').startsWith('text/event-stream')) {
          resolve({ status: res.statusCode ?? 0, body: '' })
          req.destroy()
          return
        }
        res.setEncoding('utf8')
        res.on('data', (c: string) => (text += c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }))
      },
    )
    req.on('error', reject)
    req.end(payload)
  })
}
