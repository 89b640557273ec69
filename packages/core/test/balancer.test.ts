import { heapGrowth } from '@etcdkit/testing'
import test from 'ava'
import { SmoothWeightedRoundRobin } from '../src/registry/balancer.js'

interface Item {
  name: string
  weight: number
  up?: boolean
}

function counts(b: SmoothWeightedRoundRobin<Item>, picks: number, accept?: (i: Item) => boolean) {
  const seen = new Map<string, number>()
  for (let i = 0; i < picks; i++) {
    const item = b.next(accept)!
    seen.set(item.name, (seen.get(item.name) ?? 0) + 1)
  }
  return Object.fromEntries(seen)
}

test('each item gets exactly its weight share of a whole number of periods', (t) => {
  const b = new SmoothWeightedRoundRobin<Item>()
  b.update(
    [
      { name: 'a', weight: 1 },
      { name: 'b', weight: 4 },
      { name: 'c', weight: 5 },
    ],
    (i) => i.weight,
  )
  t.deepEqual(counts(b, 10_000), { a: 1_000, b: 4_000, c: 5_000 })
})

test('the sequence is nginx smooth WRR: spread out, not in runs', (t) => {
  const b = new SmoothWeightedRoundRobin<Item>()
  b.update(
    [
      { name: 'a', weight: 5 },
      { name: 'b', weight: 1 },
      { name: 'c', weight: 1 },
    ],
    (i) => i.weight,
  )
  const seq = Array.from({ length: 14 }, () => b.next()!.name).join('')
  t.is(seq, 'aabacaa'.repeat(2))
})

test('weights with a common factor give the same sequence as the reduced ones', (t) => {
  const make = (k: number) => {
    const b = new SmoothWeightedRoundRobin<Item>()
    b.update(
      [
        { name: 'a', weight: 3 * k },
        { name: 'b', weight: 2 * k },
      ],
      (i) => i.weight,
    )
    return Array.from({ length: 10 }, () => b.next()!.name).join('')
  }
  t.is(make(1_000), make(1))
  t.is(make(1), 'ababaababa')
})

test('equal weights are plain round robin', (t) => {
  const b = new SmoothWeightedRoundRobin<Item>()
  const items = ['a', 'b', 'c', 'd'].map((name) => ({ name, weight: 3 }))
  b.update(items, (i) => i.weight)
  t.is(Array.from({ length: 8 }, () => b.next()!.name).join(''), 'abcdabcd')
  t.deepEqual(counts(b, 10_000), { a: 2_500, b: 2_500, c: 2_500, d: 2_500 })
})

test('items refused by accept are skipped; none accepted gives undefined; empty gives undefined', (t) => {
  const b = new SmoothWeightedRoundRobin<Item>()
  t.is(b.next(), undefined)
  const items = [
    { name: 'a', weight: 2, up: true },
    { name: 'b', weight: 1, up: false },
    { name: 'c', weight: 2, up: true },
  ]
  b.update(items, (i) => i.weight)
  const up = (i: Item) => i.up === true
  const c = counts(b, 1_000, up)
  t.is(c.b, undefined)
  t.is(c.a! + c.c!, 1_000)
  t.true(Math.abs(c.a! - c.c!) <= 2)
  t.is(
    b.next(() => false),
    undefined,
  )
})

test('a period too long to precompute still gives exact shares (computed per pick)', (t) => {
  const b = new SmoothWeightedRoundRobin<Item>()
  // reduced period 1_000_003 + 99_999 > 65_536: the per-pick path
  const items = [
    { name: 'a', weight: 1_000_003 },
    { name: 'b', weight: 99_999 },
  ]
  b.update(items, (i) => i.weight)
  const total = 1_000_003 + 99_999
  const c = counts(b, total)
  t.deepEqual(c, { a: 1_000_003, b: 99_999 })
  // and skipping works there too
  const only = counts(b, 100, (i) => i.name === 'b')
  t.deepEqual(only, { b: 100 })
})

test('picking allocates nothing: 1M picks grow the heap by less than 64 KB', (t) => {
  const b = new SmoothWeightedRoundRobin<Item>()
  const items = Array.from({ length: 20 }, (_, i) => ({ name: `i${i}`, weight: (i % 5) + 1 }))
  b.update(items, (i) => i.weight)
  const accept = (i: Item) => i.weight !== 0
  let sink = 0
  let escaped = { w: 0, i: 0 }
  const picks = (n: number) => {
    for (let i = 0; i < n; i++) sink += b.next(accept)!.weight
  }
  const allocatingPicks = (n: number) => {
    for (let i = 0; i < n; i++) {
      escaped = { w: b.next(accept)!.weight, i }
      sink += escaped.w
    }
  }
  for (let i = 0; i < 10; i++) picks(100_000) // warm up (JIT)
  const grew = heapGrowth(() => picks(1_000_000))
  t.log(`1M picks: heap grew by ${grew} bytes`)
  t.true(grew !== undefined && grew < 65_536, `heap growth ${grew}`)
  // the check can fail: the same loop allocating 32 bytes a pick grows the heap or collects
  for (let i = 0; i < 10; i++) allocatingPicks(10_000)
  const control = heapGrowth(() => allocatingPicks(100_000))
  t.true(control === undefined || control > 1_000_000, `control heap growth ${control}`)
  sink = sink > 0 && escaped.i > 0 ? 1 : 0
  t.is(sink, 1)
})
