import type { FastifyPluginAsync } from 'fastify'
import type { TypeBoxRequestProvider } from '../schemas.ts'
import { Type } from '@sinclair/typebox'
import { createReadStream } from 'node:fs'
import { rm, stat } from 'node:fs/promises'
import { IdParams, Nullable, PageQuery, Timestamp, errors, pageOf } from '../schemas.ts'
import { found, type RouteOptions } from '../deps.ts'
import { ApiError } from '../errors.ts'

export const RecordingSchema = Type.Object({
  id: Type.String({ format: 'uuid' }), accountId: Type.String({ format: 'uuid' }), callId: Nullable(Type.String()), conferenceId: Nullable(Type.String()),
  status: Type.Union([Type.Literal('recording'), Type.Literal('ready'), Type.Literal('failed')]), format: Type.String(),
  durationMs: Nullable(Type.Integer()), sizeBytes: Nullable(Type.Integer()), createdAt: Timestamp, updatedAt: Timestamp,
}, { $id: 'Recording' })

const ListQuery = Type.Object({ ...PageQuery.properties, callId: Type.Optional(Type.String({ format: 'uuid' })) }, { additionalProperties: false })

/** /v1/recordings: list, metadata, download (audio/wav), delete. */
export const recordingRoutes: FastifyPluginAsync<RouteOptions> = async (base, { deps }) => {
  const app = base.withTypeProvider<TypeBoxRequestProvider>()
  const repo = deps.store.recordings
  const tags = ['recordings']
  app.get('/recordings', { config: { scope: 'calls:read' }, schema: { tags, summary: 'List recordings, newest first', querystring: ListQuery, response: { 200: pageOf(RecordingSchema), ...errors() } } },
    async (req) => {
      const { callId, ...page } = req.query
      return repo.list(req.auth.accountId, { callId }, page)
    })
  app.get('/recordings/:id', { config: { scope: 'calls:read' }, schema: { tags, summary: 'Get a recording', params: IdParams, response: { 200: RecordingSchema, ...errors(404) } } },
    async (req) => found(await repo.get(req.auth.accountId, req.params.id), 'recording', req.params.id))
  app.get('/recordings/:id/download', { config: { scope: 'calls:read' }, schema: { tags, summary: 'Download the audio', params: IdParams, response: errors(404, 409) } },
    async (req, reply) => {
      const rec = found(await repo.get(req.auth.accountId, req.params.id), 'recording', req.params.id)
      if (rec.status !== 'ready') throw new ApiError(409, 'not_ready', `recording ${rec.id} is ${rec.status}`)
      const path = await repo.path(req.auth.accountId, rec.id)
      const st = path ? await stat(path).catch(() => null) : null
      if (!path || !st) throw new ApiError(404, 'not_found', `recording ${rec.id} has no file on this node`)
      return reply.type(rec.format === 'wav' ? 'audio/wav' : 'application/octet-stream')
        .header('content-length', st.size)
        .header('content-disposition', `attachment; filename="${rec.id}.${rec.format}"`)
        .send(createReadStream(path))
    })
  app.delete('/recordings/:id', { config: { scope: 'calls:write' }, schema: { tags, summary: 'Delete a recording and its file', params: IdParams, response: { 204: Type.Null(), ...errors(404) } } },
    async (req, reply) => {
      const gone = found(await repo.delete(req.auth.accountId, req.params.id), 'recording', req.params.id)
      if (gone.path) await rm(gone.path, { force: true })
      return reply.code(204).send(null)
    })
}
