import { setTimeout as sleep } from 'node:timers/promises'

/** Polls `check` every 20 ms until it returns true; fails after `timeoutMs` with an error naming `what`. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check()) return
    await sleep(20)
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`)
}
