// A fleet's reconnect after a full etcd outage is spread, not a storm (issue 29). Every kit saw the same
// outage end at the same instant; before this change each kit's watch stream, opened blind during the
// outage, held its watch creations in grpc-js's buffer, and every kit's creations reached etcd in the same
// moment the member listened again (in the fleet bench: 4,636 watch messages in one second, 11x the steady
// rate). Now a kit resumes its watches after a random delay within a window that grows with its watches
// and with the outage.
// Counted at etcd's side: its own counter of watch messages received, sampled every 100 ms.
import { setTimeout as sleep } from 'node:timers/promises'
import { type EtcdCluster, startEtcd, uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import { EtcdKit, silentLogger } from '../src/index.js'
import { eventually } from './helpers.js'

const KITS = 24
const SERVICES = 8
/**
 * Long enough that the resume window (150 ms per watch, at most half the outage) is set by the watches:
 * 10 per kit here, so each kit resumes at a random moment within 1.5 s.
 */
const OUTAGE_MS = 6_000

let etcd: EtcdCluster
test.before(async () => {
  etcd = await startEtcd()
})
test.after.always(async () => {
  await etcd?.close()
})

/** etcd's count of messages received on Watch streams (creations, progress requests), or undefined while down. */
async function watchMessages(clientUrl: string): Promise<number | undefined> {
  try {
    const res = await fetch(`${clientUrl}/metrics`, { signal: AbortSignal.timeout(1_000) })
    const text = await res.text()
    let n = 0
    for (const line of text.split('\n'))
      if (line.startsWith('grpc_server_msg_received_total{') && line.includes('grpc_method="Watch"'))
        n += Number(line.slice(line.lastIndexOf(' ') + 1))
    return n
  } catch {
    return undefined
  }
}

test.serial(
  `${KITS} kits resume their watches after a ${OUTAGE_MS / 1000} s outage of etcd spread over time, not in one instant`,
  async (t) => {
    t.timeout(90_000)
    const namespace = uniquePrefix('spread')
    const { endpoints } = etcd
    const kits = Array.from(
      { length: KITS },
      () => new EtcdKit({ endpoints, namespace, logger: silentLogger }),
    )
    t.teardown(() => Promise.all(kits.map((k) => k.close())).then(() => {}))
    // a registration each: a session (lease, keepalive stream) and the guard watch on its key
    await Promise.all(
      kits.map((kit, i) => kit.register({ service: `svc-${i % SERVICES}`, address: `10.0.0.${i}:80` })),
    )
    const views = kits.flatMap((kit) => [
      ...Array.from({ length: SERVICES }, (_, s) => kit.discover(`svc-${s}`)),
      kit.config.value('flag', { default: 'off' }),
    ])
    await Promise.all(kits.map((k) => k.discover('svc-0').ready))
    await eventually(() => views.every((v) => !v.stale), 'every view current', 30_000)

    // etcd's count of watch messages, every 100 ms, from before the outage until after the fleet resumed
    const member = etcd.members[0]!
    const samples: Array<{ at: number; n: number | undefined }> = []
    let sampling = true
    const sampler = (async () => {
      while (sampling) {
        const at = performance.now()
        samples.push({ at, n: await watchMessages(member.clientUrl) })
        await sleep(Math.max(0, 100 - (performance.now() - at)))
      }
    })()
    await member.stop()
    await eventually(() => views.every((v) => v.stale), 'every view stale during the outage', 10_000)
    await sleep(OUTAGE_MS)
    const restartedAt = performance.now()
    await member.restart()
    await eventually(() => views.every((v) => !v.stale), 'every view current again', 30_000)
    const currentMs = Math.round(performance.now() - restartedAt)
    await sleep(500)
    sampling = false
    await sampler

    // messages per sampling interval after the restart: the member's counter starts again from 0
    const after = samples.filter((s) => s.at >= restartedAt && s.n !== undefined)
    const slots: number[] = []
    let last = 0
    for (const s of after) {
      slots.push(s.n! - last)
      last = s.n!
    }
    const total = slots.reduce((a, b) => a + b, 0)
    const peak = Math.max(...slots)
    t.log(
      `all current ${currentMs} ms after the restart call; watch messages per 100 ms: ${slots.join(' ')} (total ${total}, peak ${peak})`,
    )
    // each kit re-creates its SERVICES + 2 watches: that many messages at least
    t.true(total >= KITS * (SERVICES + 2), `${total} watch messages after the restart`)
    // spread: no sampling interval holds half of the resume work (all of it in one, before the change)
    t.true(peak < total / 2, `the busiest 100 ms held ${peak} of ${total} watch messages`)
  },
)
