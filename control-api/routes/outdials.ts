import type { FastifyPluginAsync } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import type { TypeBoxRequestProvider } from '../schemas.ts'
import { IdParams, PageQuery, Timestamp, crudResponses, errors, pageOf, patchOf } from '../schemas.ts'
import { found, type RouteOptions } from '../deps.ts'
import { ApiError } from '../errors.ts'
import { isPhoneNumber } from '../phone-number.ts'
import { CsvError, parseCsv } from '../csv.ts'
import { textProblem } from '../request-text.ts'
import { isTimeZone } from '../../call/time-zones.ts'
import type { Outdial, OutdialTarget, OutdialTargetInput } from '../../store/outdials.ts'

/**
 * /v1/outdials (VoipBin OutdialManagerOutdial): contact lists, and their
 * targets (OutdialManagerOutdialtarget) at /v1/outdials/:id/targets: a
 * contact's `name`, `detail`, `data`, up to five `destinations` (E.164; a
 * campaign tries them in turn, one per attempt: VoipBin's destination_0..4,
 * which the CSV import takes as columns) and its own `timezone` (IANA; a
 * campaign's operating hours are then the contact's local hours).
 *
 * `POST /v1/outdials/:id/targets/csv` imports many: a text/csv body (header
 * row: name, detail, data, timezone, destination or destination_0..4) or
 * JSON `{rows: [target, ...]}`. Good rows are imported, every bad one is
 * reported with its line (the file's line; the row's 1-based index for
 * JSON), the field and why.
 */

const MAX_IMPORT_ROWS = 50_000
const E164_RULE = 'an E.164 number (+, country code and number, valid for its country, e.g. +4930123456)'
const isE164 = (s: string) => s.startsWith('+') && isPhoneNumber(s)

export const OutdialCreate = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 200 }),
  detail: Type.Optional(Type.String({ maxLength: 2000 })),
  data: Type.Optional(Type.String({ maxLength: 10_000, description: 'Free text kept with the list' })),
}, { additionalProperties: false })
const OutdialSchema = Type.Object({
  id: Type.String({ format: 'uuid' }), accountId: Type.String({ format: 'uuid' }), name: Type.String(), detail: Type.String(), data: Type.String(),
  createdAt: Timestamp, updatedAt: Timestamp,
}, { $id: 'Outdial' })

export const TargetCreate = Type.Object({
  name: Type.Optional(Type.String({ maxLength: 200 })),
  detail: Type.Optional(Type.String({ maxLength: 2000 })),
  data: Type.Optional(Type.String({ maxLength: 10_000, description: 'Free text kept with the contact' })),
  destinations: Type.Array(Type.String({ maxLength: 16, description: E164_RULE }), { minItems: 1, maxItems: 5, description: 'Tried in turn, one per attempt (VoipBin destination_0..4)' }),
  timezone: Type.Optional(Type.String({ maxLength: 64, description: 'IANA time zone of the contact, e.g. Europe/Berlin: operating hours are read in it' })),
}, { additionalProperties: false })
const TargetSchema = Type.Object({
  id: Type.String({ format: 'uuid' }), accountId: Type.String({ format: 'uuid' }), outdial_id: Type.String({ format: 'uuid' }),
  name: Type.String(), detail: Type.String(), data: Type.String(), destinations: Type.Array(Type.String()), timezone: Type.Union([Type.String(), Type.Null()]),
  createdAt: Timestamp, updatedAt: Timestamp,
}, { $id: 'OutdialTarget' })

const ImportRow = Type.Object({
  line: Type.Integer({ description: 'The CSV line (header = 1), or the row\'s 1-based index in JSON rows' }),
  field: Type.String(),
  reason: Type.String(),
})
const ImportReport = Type.Object({
  imported: Type.Integer(), rejected: Type.Integer(),
  target_ids: Type.Array(Type.String(), { description: 'The imported targets, in row order' }),
  errors: Type.Array(ImportRow, { description: 'Every bad row: its line, the field and why' }),
}, { $id: 'OutdialTargetImport' })

const toOutdial = (o: Outdial) => ({ ...o })
const toTarget = (t: OutdialTarget): Static<typeof TargetSchema> => ({
  id: t.id, accountId: t.accountId, outdial_id: t.outdialId, name: t.name, detail: t.detail, data: t.data, destinations: t.destinations, timezone: t.timezone,
  createdAt: t.createdAt, updatedAt: t.updatedAt,
})

/** The problems of one target, each naming its field. */
function targetProblems(t: { destinations: string[]; timezone?: string | undefined }): Array<{ field: string; reason: string }> {
  const out: Array<{ field: string; reason: string }> = []
  if (!t.destinations.length) out.push({ field: 'destinations', reason: 'at least one destination' })
  if (t.destinations.length > 5) out.push({ field: 'destinations', reason: 'at most five destinations' })
  t.destinations.forEach((d, i) => { if (typeof d !== 'string' || !isE164(d)) out.push({ field: `destinations/${i}`, reason: `${JSON.stringify(d)} is not ${E164_RULE}` }) })
  if (t.timezone !== undefined && !isTimeZone(t.timezone)) out.push({ field: 'timezone', reason: `${JSON.stringify(t.timezone)} is not a known IANA time zone` })
  return out
}

/** A CSV row's text the database cannot hold (NUL, lone surrogates): JSON bodies are checked centrally, a text/csv body is not. */
function textProblems(t: Record<string, unknown>): Array<{ field: string; reason: string }> {
  const out: Array<{ field: string; reason: string }> = []
  for (const k of ['name', 'detail', 'data', 'timezone']) {
    const problem = typeof t[k] === 'string' ? textProblem(t[k] as string) : null
    if (problem) out.push({ field: k, reason: problem })
  }
  if (Array.isArray(t.destinations)) {
    t.destinations.forEach((d, i) => { const problem = typeof d === 'string' ? textProblem(d) : null; if (problem) out.push({ field: `destinations/${i}`, reason: problem }) })
  }
  return out
}

const CSV_COLUMNS = new Set(['name', 'detail', 'data', 'timezone', 'destination', 'destination_0', 'destination_1', 'destination_2', 'destination_3', 'destination_4'])

/** CSV text as rows with their lines; a file that is not a usable CSV is a 400. */
function csvRows(text: string): Array<{ line: number; row: Static<typeof TargetCreate> & { destinations: string[] } }> {
  let records
  try {
    records = parseCsv(text)
  } catch (err) {
    if (err instanceof CsvError) throw new ApiError(400, 'validation_failed', `invalid CSV: ${err.message}`, { line: err.line })
    throw err
  }
  const header = records.shift()
  if (!header) throw new ApiError(400, 'validation_failed', 'invalid CSV: no header row (name, detail, data, timezone, destination or destination_0..destination_4)')
  const cols = header.fields.map((f) => f.trim().toLowerCase())
  const unknown = cols.filter((c) => !CSV_COLUMNS.has(c))
  if (unknown.length) throw new ApiError(400, 'validation_failed', `invalid CSV: unknown column(s) ${unknown.join(', ')} (known: ${[...CSV_COLUMNS].join(', ')})`, { columns: unknown })
  if (!cols.some((c) => c.startsWith('destination'))) throw new ApiError(400, 'validation_failed', 'invalid CSV: no destination column (destination or destination_0..destination_4)')
  if (records.length > MAX_IMPORT_ROWS) throw new ApiError(400, 'validation_failed', `invalid CSV: at most ${MAX_IMPORT_ROWS} rows per import`)
  return records.map((r) => {
    const get = (c: string) => { const i = cols.indexOf(c); return i >= 0 ? (r.fields[i] ?? '').trim() : '' }
    const destinations = ['destination', 'destination_0', 'destination_1', 'destination_2', 'destination_3', 'destination_4'].map(get).filter((d) => d !== '')
    const tz = get('timezone')
    return { line: r.line, row: { name: get('name'), detail: get('detail'), data: get('data'), destinations, ...(tz ? { timezone: tz } : {}) } }
  })
}

const R = crudResponses(OutdialSchema)
const RT = crudResponses(TargetSchema)
const TargetParams = Type.Object({ id: Type.String({ format: 'uuid' }), target_id: Type.String({ format: 'uuid' }) })

export const outdialRoutes: FastifyPluginAsync<RouteOptions> = async (base, { deps }) => {
  const app = base.withTypeProvider<TypeBoxRequestProvider>()
  const repo = deps.store.outdials
  const tags = ['campaigns']
  const read = { scope: 'calls:read' as const }
  const write = { scope: 'calls:write' as const }
  // Contact lists arrive as CSV files (this plugin only).
  app.addContentTypeParser('text/csv', { parseAs: 'string', bodyLimit: 20 * 1024 * 1024 }, (_req, body, done) => done(null, body))
  const outdialOf = async (accountId: string, id: string) => found(await repo.get(accountId, id), 'outdial', id)
  /** Campaigns running on the list dial new targets too. */
  const added = async (outdialId: string) => { await deps.campaigns?.targetsAdded(outdialId) }

  app.get('/outdials', { config: read, schema: { tags, summary: 'List outdials (contact lists)', querystring: PageQuery, response: R.list } }, async (req) => {
    const page = await repo.list(req.auth.accountId, req.query)
    return { ...page, data: page.data.map(toOutdial) }
  })
  app.post('/outdials', { config: write, schema: { tags, summary: 'Create an outdial (a contact list)', body: OutdialCreate, response: R.created } },
    async (req, reply) => reply.code(201).send(toOutdial(await repo.create(req.auth.accountId, req.body))))
  app.get('/outdials/:id', { config: read, schema: { tags, summary: 'Get an outdial', params: IdParams, response: R.one } },
    async (req) => toOutdial(await outdialOf(req.auth.accountId, req.params.id)))
  app.patch('/outdials/:id', { config: write, schema: { tags, summary: 'Update an outdial', params: IdParams, body: patchOf(OutdialCreate), response: R.updated } },
    async (req) => toOutdial(found(await repo.update(req.auth.accountId, req.params.id, req.body as Partial<Static<typeof OutdialCreate>>), 'outdial', req.params.id)))
  app.delete('/outdials/:id', { config: write, schema: { tags, summary: 'Delete an outdial and its targets (409 while a campaign uses it)', params: IdParams, response: R.deleted } }, async (req, reply) => {
    found((await repo.delete(req.auth.accountId, req.params.id)) || null, 'outdial', req.params.id)
    return reply.code(204).send(null)
  })

  app.get('/outdials/:id/targets', { config: read, schema: { tags, summary: 'List an outdial\'s targets, in the order they were added', params: IdParams, querystring: PageQuery, response: RT.list } },
    async (req) => {
      await outdialOf(req.auth.accountId, req.params.id)
      const page = await repo.listTargets(req.auth.accountId, req.params.id, req.query)
      return { ...page, data: page.data.map(toTarget) }
    })
  app.post('/outdials/:id/targets', { config: write, schema: { tags, summary: 'Add a target (a contact) to an outdial', params: IdParams, body: TargetCreate, response: RT.created } },
    async (req, reply) => {
      await outdialOf(req.auth.accountId, req.params.id)
      const problems = targetProblems(req.body)
      if (problems.length) {
        throw new ApiError(400, 'validation_failed', `invalid body: ${problems.map((p) => `${p.field}: ${p.reason}`).join('; ')}`,
          problems.map((p) => ({ path: `/${p.field}`, message: p.reason })))
      }
      const [t] = await repo.addTargets(req.auth.accountId, req.params.id, [req.body as OutdialTargetInput])
      await added(req.params.id)
      return reply.code(201).send(toTarget(t!))
    })
  app.post('/outdials/:id/targets/csv', {
    config: write,
    schema: {
      tags, summary: 'Import targets: a text/csv body (header: name, detail, data, timezone, destination or destination_0..4) or JSON {rows}; good rows are imported, every bad row reported with its line and reason',
      params: IdParams,
      body: Type.Union([Type.String({ description: 'text/csv' }), Type.Object({ rows: Type.Array(Type.Unknown(), { minItems: 1, maxItems: MAX_IMPORT_ROWS }) }, { additionalProperties: false })]),
      response: { 200: ImportReport, ...errors(404) },
    },
  }, async (req) => {
    await outdialOf(req.auth.accountId, req.params.id)
    const rows = typeof req.body === 'string'
      ? csvRows(req.body)
      : req.body.rows.map((row, i) => ({ line: i + 1, row: row as Static<typeof TargetCreate> }))
    const good: OutdialTargetInput[] = []
    const bad: Array<{ line: number; field: string; reason: string }> = []
    for (const { line, row } of rows) {
      const unstorable = typeof row === 'object' && row !== null && Array.isArray(row.destinations) ? textProblems(row) : []
      const problems = unstorable.length ? unstorable : typeof row === 'object' && row !== null && Array.isArray(row.destinations)
        ? [...shapeProblems(row), ...targetProblems(row)]
        : [{ field: 'destinations', reason: 'a row is an object with destinations[]' }]
      if (problems.length) for (const p of problems) bad.push({ line, ...p })
      else good.push({ name: row.name, detail: row.detail, data: row.data, destinations: row.destinations, timezone: row.timezone ?? null })
    }
    const targets = await repo.addTargets(req.auth.accountId, req.params.id, good)
    if (targets.length) await added(req.params.id)
    return { imported: targets.length, rejected: new Set(bad.map((b) => b.line)).size, target_ids: targets.map((t) => t.id), errors: bad }
  })
  app.get('/outdials/:id/targets/:target_id', { config: read, schema: { tags, summary: 'Get a target', params: TargetParams, response: RT.one } },
    async (req) => toTarget(found(await repo.getTarget(req.auth.accountId, req.params.id, req.params.target_id), 'target', req.params.target_id)))
  app.delete('/outdials/:id/targets/:target_id', { config: write, schema: { tags, summary: 'Delete a target (no further attempts; a call under way goes on)', params: TargetParams, response: RT.deleted } }, async (req, reply) => {
    found((await repo.deleteTarget(req.auth.accountId, req.params.id, req.params.target_id)) || null, 'target', req.params.target_id)
    return reply.code(204).send(null)
  })
}

/** A JSON row's fields beyond what targetProblems checks (the schema does not check rows one by one). */
function shapeProblems(row: Record<string, unknown>): Array<{ field: string; reason: string }> {
  const out: Array<{ field: string; reason: string }> = []
  for (const k of Object.keys(row)) if (!['name', 'detail', 'data', 'destinations', 'timezone'].includes(k)) out.push({ field: k, reason: 'unknown field' })
  for (const k of ['name', 'detail', 'data', 'timezone']) if (row[k] !== undefined && typeof row[k] !== 'string') out.push({ field: k, reason: 'must be a string' })
  if (Array.isArray(row.destinations) && row.destinations.some((d) => typeof d !== 'string')) out.push({ field: 'destinations', reason: 'must be strings' })
  for (const [k, max] of [['name', 200], ['detail', 2000], ['data', 10_000]] as const) {
    const v = row[k]
    if (typeof v === 'string' && v.length > max) out.push({ field: k, reason: `at most ${max} characters` })
  }
  return out
}
