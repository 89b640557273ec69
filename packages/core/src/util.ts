import { type EventEmitter, on } from 'node:events'

/**
 * Exponential backoff with full jitter: each delay is random in [0, min(cap, base * 2^n)], so processes
 * that lost etcd together (a restart) come back spread over the whole window, not bunched above `base`.
 */
export class Backoff {
  #attempt = 0
  constructor(
    private readonly base: number,
    private readonly cap: number,
  ) {}
  next(): number {
    const ceiling = Math.min(this.cap, this.base * 2 ** this.#attempt)
    this.#attempt = Math.min(this.#attempt + 1, 30)
    return Math.random() * ceiling
  }
  reset() {
    this.#attempt = 0
  }
}

/**
 * Cancels a gRPC stream (an HTTP/2 RST_STREAM) from a fresh macrotask. Resetting a stream from JavaScript
 * that runs inside an nghttp2 callback (a stream's own event, or a promise continuation drained before
 * Node leaves that callback) re-enters nghttp2: Node can then spin in `Http2Session::SendPendingData`,
 * growing a vector until the process aborts with `std::bad_alloc` (nodejs/node#38964; seen on
 * `kit.close()` after an etcd wipe). Every stream the kit cancels goes through here.
 */
export function cancelStream(stream: { cancel(): void } | undefined): void {
  if (stream) setImmediate(() => stream.cancel())
}

/** The smallest key greater than every key that starts with `prefix` (etcd's range_end for a prefix). */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix)
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++
      return end.subarray(0, i + 1)
    }
  }
  return Buffer.from([0]) // every key
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason)
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    const onAbort = () => {
      clearTimeout(timer)
      reject(signal?.reason)
    }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/** A promise with its resolve and reject exposed. */
export function deferred<T>() {
  let resolve!: (value: T) => void
  let reject!: (err: unknown) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

/**
 * Iterates a live value: first `current()`, then every value passed to `event`, until `closeEvent`
 * fires. Values emitted while the consumer is busy are buffered, none skipped.
 */
export async function* liveValues<T>(
  emitter: EventEmitter,
  event: string,
  current: () => T,
  closeEvent = 'close',
): AsyncGenerator<T, void, undefined> {
  // subscribe before reading `current()` so no change can fall between the two
  const changes = on(emitter, event, { close: [closeEvent] } as Parameters<typeof on>[2])
  yield current()
  for await (const [value] of changes) yield value as T
}

/**
 * Yields `current()` once `ready` resolves (nothing when it rejects), then each value of `change` emitted
 * after that read, until `close`. A change emitted while waiting for `ready` is already in `current()`: each
 * carries `version()` as it was when emitted, and only those newer than the read are yielded.
 */
export async function* valuesWhenReady<T>(
  emitter: EventEmitter,
  ready: Promise<unknown>,
  current: () => T,
  version: () => number,
): AsyncGenerator<T, void, undefined> {
  const inbox = new Inbox<[value: T, version: number]>()
  const onChange = (value: T) => inbox.push([value, version()])
  const onClose = () => inbox.end()
  emitter.on('change', onChange)
  emitter.on('close', onClose)
  try {
    try {
      await ready
    } catch {
      return
    }
    const first = version()
    yield current()
    for await (const [value, v] of inbox.drain()) if (v > first) yield value
  } finally {
    emitter.off('change', onChange)
    emitter.off('close', onClose)
  }
}

/**
 * Waits for `work` to settle (fulfilled or rejected alike) for at most `ms`; resolves `true` if it did,
 * `false` if the time ran out first (the work goes on unawaited). The timer is cleared either way.
 */
export async function settledWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms)
  })
  try {
    return await Promise.race([
      work.then(
        () => true,
        () => true,
      ),
      late,
    ])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * A signal that aborts after `ms` or when `signal` aborts, whichever is first; call `done()` when the work
 * ends. Built by hand because on Node 20 `AbortSignal.any([s, AbortSignal.timeout(ms)])` can be garbage
 * collected while awaited, and then it never fires (seen here: a registration that never timed out).
 */
export function deadline(ms: number, signal?: AbortSignal): { signal: AbortSignal; done(): void } {
  const controller = new AbortController()
  const timer = setTimeout(
    () => controller.abort(new DOMException(`timed out after ${ms} ms`, 'TimeoutError')),
    ms,
  )
  const onAbort = () => controller.abort(signal?.reason)
  if (signal?.aborted) onAbort()
  else signal?.addEventListener('abort', onAbort, { once: true })
  return {
    signal: controller.signal,
    done() {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
    },
  }
}

/** A buffered queue an async iterator drains: `push` never drops an item; `end` finishes the iteration. */
export class Inbox<T> {
  readonly #items: T[] = []
  #wake: (() => void) | undefined
  #ended = false

  push(item: T) {
    this.#items.push(item)
    this.#wake?.()
  }

  end() {
    this.#ended = true
    this.#wake?.()
  }

  /** Yields every item pushed, in order, waiting while empty, until `end()` and the queue is empty. */
  async *drain(): AsyncGenerator<T, void, undefined> {
    for (;;) {
      if (this.#items.length > 0) {
        yield this.#items.shift() as T
        continue
      }
      if (this.#ended) return
      await new Promise<void>((resolve) => {
        this.#wake = resolve
      })
      this.#wake = undefined
    }
  }
}
