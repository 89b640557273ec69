// Which instance facts a flag's targeting may read: so an evaluation merges only those (most rules read
// only what the caller passes, and then the caller's context goes to flagd-core as is, with no copy).

/** The keys the provider adds to the evaluation context (see `InstanceContext`). */
export const INSTANCE_KEYS = ['service', 'address', 'zone', 'version', 'metadata', 'targetingKey'] as const
export type InstanceKey = (typeof INSTANCE_KEYS)[number]

/**
 * JsonLogic operators that read nothing from the context themselves (their arguments are walked): the
 * standard ones and flagd's. Any other operator (`val`, `missing`, `missing_some`, `exists`, ...) may read
 * any key: the flag is then given every instance fact, as if this analysis did not exist.
 */
const PURE = new Set([
  'if',
  '?:',
  '==',
  '===',
  '!=',
  '!==',
  '!',
  '!!',
  'or',
  'and',
  '>',
  '>=',
  '<',
  '<=',
  'max',
  'min',
  '+',
  '-',
  '*',
  '/',
  '%',
  'cat',
  'substr',
  'in',
  'merge',
  'starts_with',
  'ends_with',
  'sem_ver',
  // iterators: a `var` inside reads an element, not the context; counting it as a context read is only
  // a superset (a fact merged that the rule does not read)
  'map',
  'filter',
  'reduce',
  'all',
  'some',
  'none',
])

/**
 * The instance facts `targeting` may read (`$ref`s resolved through `evaluators`): a subset of
 * `INSTANCE_KEYS`, all of them when the rule reads the context in a way not analysed here (a computed
 * `var`, `var: ""`, an operator outside `PURE`), none for a rule reading only the caller's keys.
 */
export function instanceReads(
  targeting: unknown,
  evaluators: Record<string, unknown> | undefined,
): InstanceKey[] {
  const keys = new Set<string>()
  const seen = new Set<string>()
  const walk = (node: unknown): boolean => {
    if (Array.isArray(node)) return node.every(walk)
    if (typeof node !== 'object' || node === null) return true
    const entries = Object.entries(node)
    if (entries.length !== 1) return entries.every(([, v]) => walk(v)) // a data object: its values
    const [op, args] = entries[0]!
    if (op === '$ref') {
      if (typeof args !== 'string' || evaluators === undefined || !(args in evaluators)) return false
      if (seen.has(args)) return true
      seen.add(args)
      return walk(evaluators[args])
    }
    if (op === 'var') {
      const path = Array.isArray(args) ? args[0] : args
      if (typeof path !== 'string' || path === '' || path.startsWith('.') || path.includes('\\')) return false
      keys.add(path.split('.')[0]!)
      return Array.isArray(args) ? args.slice(1).every(walk) : true
    }
    if (op === 'fractional') {
      // bucketed by a literal string: no context; by an expression: it, and targetingKey when it is not
      // a string; by nothing: targetingKey
      const list = Array.isArray(args) ? args : [args]
      if (typeof list[0] !== 'string') keys.add('targetingKey')
      return list.every(walk)
    }
    if (!PURE.has(op)) return false
    return walk(args)
  }
  if (!walk(targeting)) return [...INSTANCE_KEYS]
  return INSTANCE_KEYS.filter((key) => keys.has(key))
}
