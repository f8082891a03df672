import type { FastifyTypeProvider } from 'fastify'
import { Type, type TSchema, type Static } from '@sinclair/typebox'

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
