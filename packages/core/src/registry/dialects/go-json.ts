// JSON text as Go's encoding/json writes it: struct fields in declaration order, map keys sorted by bytes.

/**
 * A Go value: a plain object is a struct (fields in the order given), a `Map` a Go map (keys sorted by their
 * UTF-8 bytes, as encoding/json sorts them), `null` a nil map, slice or pointer.
 */
export type GoValue = string | number | boolean | null | readonly GoValue[] | GoMap | GoStruct
export type GoMap = ReadonlyMap<string, string>
export interface GoStruct {
  readonly [field: string]: GoValue
}

/**
 * The bytes Go's `json.Marshal` writes for `value`. Differs from `JSON.stringify` in two ways that the
 * frameworks' readers never notice but byte-exact fixtures do: map keys are sorted (JavaScript puts
 * integer-like keys first, in numeric order), and `<`, `>`, `&`, U+2028 and U+2029 are escaped
 * (`escapeHtml: false` gives the bytes of sonic, Hertz's encoder, which does not escape them).
 */
export function goJson(value: GoValue, escapeHtml = true): string {
  const str = escapeHtml ? goString : (s: string) => JSON.stringify(s)
  const write = (v: GoValue): string => {
    if (v === null) return 'null'
    if (typeof v === 'string') return str(v)
    if (typeof v === 'number' || typeof v === 'boolean') return JSON.stringify(v)
    if (Array.isArray(v)) return `[${v.map(write).join(',')}]`
    if (v instanceof Map) {
      const keys = [...v.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
      return `{${keys.map((k) => `${str(k)}:${str(v.get(k) as string)}`).join(',')}}`
    }
    const fields = Object.entries(v as GoStruct)
    return `{${fields.map(([k, f]) => `${str(k)}:${write(f)}`).join(',')}}`
  }
  return write(value)
}

/** A Go map, or `null` (what Go writes for a nil map) when it is empty. */
export function goMapOrNull(map: GoMap): GoMap | null {
  return map.size === 0 ? null : map
}

function goString(s: string): string {
  return JSON.stringify(s).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  )
}
