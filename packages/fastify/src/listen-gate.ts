// Holds a server's 'listening' event back until the registration is written: how listen() waits for etcd.
import type { Server } from 'node:net'

/**
 * Fastify's `listen()` (4 and 5, promise or callback style) runs `ready()` — which loads plugins,
 * including one registered without `await` — and then resolves on the server's first `'listening'` (or
 * rejects on `'error'`). Replacing `fastify.listen` at load time misses a listen() already running;
 * holding that event back does not: `until` runs when the socket is bound, and only then does Fastify
 * see `'listening'`. If `until` fails, `onFailure` runs (close the server), then Fastify sees `'error'`.
 */
export function holdListening(
  server: Server,
  until: () => Promise<unknown>,
  onFailure: (err: unknown) => Promise<void>,
): void {
  const hadOwnEmit = Object.hasOwn(server, 'emit')
  type Emit = (this: Server, event: string | symbol, ...args: unknown[]) => boolean
  const emit = server.emit as Emit
  const release = () => {
    if (hadOwnEmit) server.emit = emit as Server['emit']
    else delete (server as { emit?: unknown }).emit
  }
  server.emit = function heldEmit(this: Server, event: string | symbol, ...args: unknown[]): boolean {
    if (event !== 'listening') return emit.call(this, event, ...args)
    release()
    until().then(
      () => emit.call(server, 'listening', ...args),
      async (err: unknown) => {
        await onFailure(err).catch(() => {})
        // Fastify listens for 'error' while it waits; without a listener, emitting would throw
        if (server.listenerCount('error') > 0) emit.call(server, 'error', err)
      },
    )
    return true
  } as Server['emit']
}
