import type { FastifyTypeProvider } from 'fastify'
import { E164_RULE, PHONE_NUMBER_RULE } from './phone-number.ts'
import { Type, type TSchema, type Static, type TObject, type TProperties, type TUnsafe } from '@sinclair/typebox'

/** Shared TypeBox pieces: the error body, pagination, ids. */
export const ErrorSchema = Type.Object({
  error: Type.Object({
    code: Type.String(),
    message: Type.String(),
    details: Type.Optional(Type.Unknown()),
  }),
}, { $id: 'Error', description: 'Every error: a machine code, a human message saying what is wrong, optional details' })

export const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()])

export const IdParams = Type.Object({ id: Type.String({ format: 'uuid', description: 'Resource id' }) })
export type IdParams = Static<typeof IdParams>

export const PageQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20, description: 'Page size (1-100)' })),
  cursor: Type.Optional(Type.String({ maxLength: 64, description: 'nextCursor from the previous page' })),
})
export type PageQuery = Static<typeof PageQuery>

export const pageOf = <T extends TSchema>(item: T) => Type.Object({
  data: Type.Array(item),
  nextCursor: Nullable(Type.String()),
})

/** Every phone number the API takes (rule in phone-number.ts). */
export const PhoneNumber = (description = 'Phone number') => Type.String({ format: 'phone-number', maxLength: 16, description: `${description}: ${PHONE_NUMBER_RULE}` })
/** An E.164 number only (contacts, the do-not-call list, scheduled calls). */
export const E164Number = (description = 'Phone number') => Type.String({ format: 'e164', maxLength: 16, description: `${description}: ${E164_RULE}` })
export const PhoneNumberOrSipUri = (description = 'Destination') => Type.String({ format: 'phone-number-or-sip-uri', maxLength: 300, description: `${description}: a SIP URI (sip:user@host), or ${PHONE_NUMBER_RULE}` })

export const Timestamp = Type.String({ format: 'date-time' })
export const Metadata = Type.Record(Type.String(), Type.String({ maxLength: 500 }), { maxProperties: 50 })

/** Standard error responses for OpenAPI. */
export function errors(...codes: number[]): Record<number, typeof ErrorSchema> {
  return Object.fromEntries([400, 401, 403, 429, ...codes].map((c) => [c, ErrorSchema]))
}

/** Response helpers: keep the route definitions short. */
export function crudResponses<T extends TSchema>(item: T) {
  return {
    list: { 200: pageOf(item), ...errors() },
    one: { 200: item, ...errors(404) },
    created: { 201: item, ...errors(409) },
    updated: { 200: item, ...errors(404, 409) },
    deleted: { 204: Type.Null(), ...errors(404) },
  }
}

/**
 * A TypeBox type provider that types requests (params, query, body) from the
 * schemas but leaves replies untyped: response schemas still drive OpenAPI and
 * serialization, while handlers return the store's own types.
 */
export interface TypeBoxRequestProvider extends FastifyTypeProvider {
  validator: this['schema'] extends TSchema ? Static<this['schema']> : unknown
  serializer: unknown
}

/** A string enum schema that keeps its literal union type. */
export const StringEnum = <T extends string>(values: readonly T[], opts: Record<string, unknown> = {}) =>
  Type.Unsafe<T>({ type: 'string', enum: [...values], ...opts })

/**
 * The PATCH body of a resource, derived from its one TypeBox definition (the
 * POST body): every field optional, at least one present, nothing unknown,
 * each field validated exactly as on POST. With `nullClears`, `null` on a field
 * POST lets you leave out removes it (the resource's store must treat null so);
 * fields POST requires or gives a default are never nullable, and defaults
 * are dropped (PATCH changes only what it names). Fields added to the definition later
 * get their PATCH form here without anyone writing it.
 *
 * `overrides` replaces a field's PATCH form where PATCH means something else
 * than "replace" (e.g. a trunk's `outbound` is merged into the stored one).
 */
export function patchOf<T extends TObject, C extends boolean = false, O extends TProperties = {}>(
  create: T,
  opts: { nullClears?: C; overrides?: O; description?: string } = {},
): TUnsafe<PatchBody<Static<T>, C, O>> {
  const required = new Set(create.required ?? [])
  const props: TProperties = {}
  for (const [key, schema] of Object.entries(create.properties)) {
    const override = opts.overrides?.[key]
    if (override) {
      props[key] = Type.Optional(override)
      continue
    }
    // A default belongs to POST: on PATCH the validator would write it over the stored value.
    const { default: fallback, ...exact } = Type.Optional(schema, false) as TSchema
    const clearable = opts.nullClears === true && !required.has(key) && fallback === undefined && !acceptsNull(exact as TSchema)
    props[key] = Type.Optional(clearable ? Nullable(exact as TSchema) : exact as TSchema)
  }
  return Type.Unsafe<PatchBody<Static<T>, C, O>>(Type.Object(props, {
    additionalProperties: false, minProperties: 1, ...(opts.description ? { description: opts.description } : {}),
  }))
}

type PatchBody<T, C extends boolean, O extends TProperties> = {
  [K in keyof T]?: K extends keyof O ? Static<O[K]> : C extends true ? (undefined extends T[K] ? Exclude<T[K], undefined> | null : T[K]) : T[K]
}

function acceptsNull(schema: TSchema): boolean {
  if (schema.type === 'null') return true
  const members = (schema.anyOf ?? schema.oneOf) as TSchema[] | undefined
  return Array.isArray(members) && members.some(acceptsNull)
}

/**
 * The response form of a resource: the read-only fields the store adds (id,
 * accountId, timestamps…) and every field of its definition except the
 * write-only ones (passwords), optional where POST lets them be absent
 * (and has no default).
 */
export function responseOf<T extends TObject, R extends TProperties, W extends keyof T['properties'] & string = never>(
  create: T, readOnly: R, opts: { $id: string; writeOnly?: readonly W[] },
) {
  const hidden = new Set<string>(opts.writeOnly ?? [])
  // A field with a default is always there once stored.
  const shown = Object.fromEntries(Object.entries(create.properties).filter(([k]) => !hidden.has(k))
    .map(([k, v]) => [k, (v as TSchema).default !== undefined ? Type.Optional(v, false) : v])) as Omit<T['properties'], W>
  return Type.Object({ ...readOnly, ...shown }, { $id: opts.$id })
}
