// The kit is an emitter of its own typed events (EtcdKitEvents).
import test from 'ava'
import type { SessionState } from '../src/index.js'
import { etcd, eventually, kit } from './helpers.js'

test.after.always(async () => (await etcd()).close())

test("kit.on('session') reports the session's state changes", async (t) => {
  const k = await kit()
  const states: SessionState[] = []
  k.on('session', (state) => states.push(state))
  await k.register({ service: 'events', address: '127.0.0.1:4000' })
  await eventually(() => states.includes('alive'), "the kit's 'session' event with 'alive'")
  await k.close()
  t.is(states.at(-1), k.session.state)
})
