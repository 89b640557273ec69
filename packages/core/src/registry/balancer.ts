/** Longest precomputed schedule (one period of the weighted sequence), and the work allowed to build it. */
const MAX_PERIOD = 1 << 16
const MAX_BUILD_STEPS = 1 << 22

enum Mode {
  Empty,
  /** All weights equal: plain round robin over the items. */
  RoundRobin,
  /** One precomputed period of the smooth weighted sequence. */
  Schedule,
  /** Too large a period to precompute: nginx's algorithm step by step, O(n) per pick. */
  Live,
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b]
  return a
}

/**
 * Smooth weighted round robin (nginx's algorithm): over one period of `sum(weights)` picks each item is
 * picked exactly `weight` times, spread out rather than in runs, and the sequence is deterministic.
 *
 * The sequence is computed once per `update()` (weights divided by their gcd, so the period is as short as
 * it can be), so a pick is an array read: O(1) and allocation-free. Equal weights are plain round robin.
 * Only a set whose reduced period exceeds 65,536 picks (or 4M steps to build) falls back to running the
 * algorithm per pick, O(n), still without allocating.
 */
export class SmoothWeightedRoundRobin<T> {
  #items: readonly T[] = []
  #mode = Mode.Empty
  #schedule = new Uint32Array(0)
  #weights = new Float64Array(0)
  #current = new Float64Array(0)
  #pos = 0

  /** The items of the last `update()`, in the order given. */
  get items(): readonly T[] {
    return this.#items
  }

  get size(): number {
    return this.#items.length
  }

  /** Replaces the item set and recomputes the sequence. Weights must be integers >= 1. */
  update(items: readonly T[], weightOf: (item: T) => number): void {
    const n = items.length
    this.#items = items
    if (n === 0) {
      this.#mode = Mode.Empty
      return
    }
    const weights = new Float64Array(n)
    let g = 0
    for (let i = 0; i < n; i++) {
      const w = weightOf(items[i]!)
      weights[i] = w
      g = gcd(w, g)
    }
    let total = 0
    for (let i = 0; i < n; i++) {
      weights[i] = weights[i]! / g
      total += weights[i]!
    }
    if (total === n) {
      this.#mode = Mode.RoundRobin
      this.#pos %= n
      return
    }
    if (total <= MAX_PERIOD && total * n <= MAX_BUILD_STEPS) {
      const schedule = new Uint32Array(total)
      const current = new Float64Array(n)
      for (let step = 0; step < total; step++) schedule[step] = swrrStep(weights, current, total)
      this.#schedule = schedule
      this.#mode = Mode.Schedule
      this.#pos %= total
      return
    }
    this.#weights = weights
    this.#current = new Float64Array(n)
    this.#mode = Mode.Live
  }

  /**
   * The next item in the sequence for which `accept` returns true (every item when `accept` is omitted);
   * `undefined` when no item is accepted. Pass a function created once, not a new closure per call.
   */
  next(accept?: (item: T) => boolean): T | undefined {
    const items = this.#items
    switch (this.#mode) {
      case Mode.Empty:
        return undefined
      case Mode.RoundRobin: {
        const n = items.length
        for (let tries = 0; tries < n; tries++) {
          const item = items[this.#pos]!
          this.#pos = this.#pos + 1 === n ? 0 : this.#pos + 1
          if (accept === undefined || accept(item)) return item
        }
        return undefined
      }
      case Mode.Schedule: {
        const schedule = this.#schedule
        const period = schedule.length
        for (let tries = 0; tries < period; tries++) {
          const item = items[schedule[this.#pos]!]!
          this.#pos = this.#pos + 1 === period ? 0 : this.#pos + 1
          if (accept === undefined || accept(item)) return item
        }
        return undefined
      }
      case Mode.Live:
        return this.#live(accept)
    }
  }

  /** nginx's step over the accepted items only, so their shares stay exact while others are skipped. */
  #live(accept: ((item: T) => boolean) | undefined): T | undefined {
    const items = this.#items
    const weights = this.#weights
    const current = this.#current
    let best = -1
    let total = 0
    for (let i = 0; i < items.length; i++) {
      if (accept !== undefined && !accept(items[i]!)) continue
      current[i] = current[i]! + weights[i]!
      total += weights[i]!
      if (best < 0 || current[i]! > current[best]!) best = i
    }
    if (best < 0) return undefined
    current[best] = current[best]! - total
    return items[best]
  }
}

/** One step of nginx's smooth weighted round robin; returns the picked index. */
function swrrStep(weights: Float64Array, current: Float64Array, total: number): number {
  let best = 0
  for (let i = 0; i < weights.length; i++) {
    current[i] = current[i]! + weights[i]!
    if (current[i]! > current[best]!) best = i
  }
  current[best] = current[best]! - total
  return best
}
