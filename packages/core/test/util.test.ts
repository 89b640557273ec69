// The shared helpers' contracts: Backoff's full jitter.
import test from 'ava'
import { Backoff } from '../src/util.js'

test('Backoff: full jitter, each delay anywhere in [0, min(cap, base * 2^n)]', (t) => {
  const samples = (attempt: number) =>
    Array.from({ length: 2_000 }, () => {
      const b = new Backoff(100, 1_000)
      for (let i = 0; i < attempt; i++) b.next()
      return b.next()
    })
  for (const [attempt, ceiling] of [
    [0, 100],
    [2, 400],
    [6, 1_000],
  ] as const) {
    const delays = samples(attempt)
    t.true(Math.max(...delays) <= ceiling, `attempt ${attempt}: never above ${ceiling}`)
    // 2,000 uniform draws: the lowest tenth of the window is hit (p of missing it ~ 1e-92)
    t.true(Math.min(...delays) < ceiling / 10, `attempt ${attempt}: delays reach below base too`)
  }
})
