// @Config with a Standard Schema: the property holds the schema's output; a refused value leaves it as it was.
import type { InvalidConfigValueError } from '@etcdkit/core'
import { bindEtcdKit, Config } from '@etcdkit/decorators'
import test from 'ava'
import { z } from 'zod'
import { etcd, eventually, kits } from './helpers.js'

test.after.always(async () => (await etcd()).close())

test('@Config(key, { schema }) follows a zod-checked value and keeps the last good one', async (t) => {
  const { etcdctl } = await etcd()
  const [kit] = await kits(1)
  class Orders {
    @Config('orders.limits', {
      parse: JSON.parse,
      schema: z.object({ max: z.number().int().positive() }),
      default: { max: 1 },
    })
    limits!: { max: number }
  }
  const orders = new Orders()
  bindEtcdKit(orders, kit!)
  t.deepEqual(orders.limits, { max: 1 })
  const refused: InvalidConfigValueError[] = []
  const handle = kit!.config.value('orders.limits', {
    parse: JSON.parse,
    schema: z.object({ max: z.number().int().positive() }),
  })
  handle.on('invalid', (e) => refused.push(e))
  await handle.ready
  await etcdctl(['put', `${kit!.namespace}config/orders.limits`, '{"max": 7}'])
  await eventually(() => orders.limits.max === 7, 'the property follows etcd')
  await etcdctl(['put', `${kit!.namespace}config/orders.limits`, '{"max": 0}'])
  await eventually(() => refused.length === 1, 'the refused value reported')
  t.deepEqual(orders.limits, { max: 7 })
  t.deepEqual(refused[0]!.issues[0]!.path, ['max'])
  t.throws(() => Config('x', { schema: {} as never }), { message: /invalid schema/ })
  await kit!.close()
})
