// Standard Schema (zod, valibot, arktype, ...) as a config value's validator: checked synchronously.
import type { StandardSchemaV1 } from '@standard-schema/spec'
import { InvalidArgumentError, show } from '../errors.js'

export type { StandardSchemaV1 }

/** One problem a schema found: where (a path into the value, empty for the value itself) and what. */
export interface ConfigIssue {
  readonly message: string
  readonly path?: ReadonlyArray<PropertyKey>
}

export type SchemaResult<T> =
  | { ok: true; value: T }
  | { ok: false; reason: string; issues: ConfigIssue[]; cause?: unknown }

/** Whether `value` implements Standard Schema v1 (`value['~standard'].validate`). */
export function isStandardSchema(value: unknown): value is StandardSchemaV1 {
  if ((typeof value !== 'object' && typeof value !== 'function') || value === null) return false
  const props = (value as { '~standard'?: unknown })['~standard']
  return (
    typeof props === 'object' &&
    props !== null &&
    (props as { version?: unknown }).version === 1 &&
    typeof (props as { validate?: unknown }).validate === 'function'
  )
}

/** Refuses, at the call, a `schema` option that is not a Standard Schema. */
export function checkSchema(schema: unknown, what: string): StandardSchemaV1 {
  if (!isStandardSchema(schema))
    throw new InvalidArgumentError(
      `invalid schema ${show(schema)} for ${what}: expected a Standard Schema (zod, valibot, arktype: an object with "~standard")`,
    )
  return schema
}

/** Renders issues as `path: message; path: message`, capped, for error messages and logs. */
export function describeIssues(issues: readonly ConfigIssue[]): string {
  const parts = issues
    .slice(0, 5)
    .map((i) => (i.path?.length ? `${i.path.map(String).join('.')}: ` : '') + i.message)
  if (issues.length > 5) parts.push(`and ${issues.length - 5} more`)
  const text = parts.join('; ')
  return text.length > 500 ? `${text.slice(0, 500)}…` : text
}

/**
 * Validates `value` with `schema`. A value must be available at once (`current` is a property read), so a
 * schema whose validation returns a promise (an async refinement) refuses the value with a clear reason;
 * the rejection of that promise is silenced.
 */
export function runSchema<T>(schema: StandardSchemaV1<unknown, T>, value: unknown): SchemaResult<T> {
  let result: StandardSchemaV1.Result<T> | Promise<StandardSchemaV1.Result<T>>
  try {
    result = schema['~standard'].validate(value)
  } catch (err) {
    return {
      ok: false,
      reason: `schema threw: ${err instanceof Error ? err.message : String(err)}`,
      issues: [],
      cause: err,
    }
  }
  if (result instanceof Promise) {
    result.catch(() => {})
    return {
      ok: false,
      reason: 'the schema validates asynchronously; config schemas must be synchronous',
      issues: [],
    }
  }
  if (result.issues) {
    const issues: ConfigIssue[] = result.issues.map((i) => ({
      message: i.message,
      ...(i.path
        ? {
            path: i.path.map((p) =>
              typeof p === 'object' && p !== null ? (p as { key: PropertyKey }).key : p,
            ),
          }
        : {}),
    }))
    return { ok: false, reason: `schema refused it: ${describeIssues(issues)}`, issues }
  }
  return { ok: true, value: result.value }
}
