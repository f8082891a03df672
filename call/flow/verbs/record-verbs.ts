import { Type } from '@sinclair/typebox'
import type { ListenRequest } from '../../call-control.ts'
import { defineVerb } from '../verb.ts'

/** The verbs that record, transcribe or fork the call's audio. */

export const recordingStart = defineVerb({
  type: 'recording_start', summary: 'Record the call; with an end condition (silence, a key, a duration) the flow waits for it and stops the recording (voicemail)',
  option: Type.Object({
    format: Type.Optional(Type.Literal('wav', { default: 'wav' })),
    channels: Type.Optional(Type.Union([Type.Literal('mono'), Type.Literal('dual')], { default: 'mono' })),
    end_of_silence: Type.Optional(Type.Integer({ minimum: 0, maximum: 3600, description: 'Seconds of caller silence (after speech) that end it; 0: none' })),
    end_of_key: Type.Optional(Type.Union(['none', 'any', '*', '#', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'].map((k) => Type.Literal(k)), { description: 'A key that ends it (none, any, or one key)' })),
    duration: Type.Optional(Type.Integer({ minimum: 0, maximum: 14_400, description: 'Seconds after which it ends; 0: no limit' })),
    beep_start: Type.Optional(Type.Boolean({ default: false, description: 'A beep before recording starts' })),
  }, { additionalProperties: false }),
  run: async (ctx, o) => {
    if (o.beep_start) await ctx.need('prompt')(ctx.call, { tone: { tone: 'beep' } })
    // Stopped during the beep: no recording starts.
    if (ctx.signal.aborted) return { outcome: 'stopped' }
    const { recordingId } = await ctx.need('startRecording')(ctx.call, { format: 'wav', channels: o.channels ?? 'mono' })
    ctx.vars.set('callplane.recording.id', recordingId)
    ctx.vars.set('callplane.recording.format', 'wav')
    const key = o.end_of_key && o.end_of_key !== 'none' ? o.end_of_key : null
    const ends = (o.end_of_silence ?? 0) > 0 || key !== null || (o.duration ?? 0) > 0
    if (!ends) return { outcome: 'recording' }
    const req: ListenRequest = {
      // No first-input timeout of its own: the duration (else a long cap) bounds it.
      timeoutMs: (o.duration || 3600) * 1000,
      ...((o.duration ?? 0) > 0 ? { maxDurationMs: o.duration! * 1000 } : { maxDurationMs: 3_600_000 }),
      ...((o.end_of_silence ?? 0) > 0 ? { silenceMs: o.end_of_silence! * 1000 } : {}),
      ...(key ? { digits: key === 'any' ? { max: 1 } : { max: 64, finishKey: key } } : {}),
    }
    const r = await ctx.need('listen')(ctx.call, req)
    if (r.reason !== 'ended') await ctx.need('stopRecording')(ctx.call).catch(() => { /* already stopped (recording_stop on another path) */ })
    return { outcome: r.reason }
  },
})

export const recordingStop = defineVerb({
  type: 'recording_stop', summary: 'Stop the call\'s recording',
  option: Type.Object({}, { additionalProperties: false }),
  run: async (ctx) => { await ctx.need('stopRecording')(ctx.call); return { outcome: 'stopped' } },
})

export const transcribeStart = defineVerb({
  type: 'transcribe_start', summary: 'Transcribe the call live (call.transcript events and transcript lines), with no agent',
  option: Type.Object({
    language: Type.Optional(Type.String({ minLength: 2, maxLength: 35 })),
    direction: Type.Optional(Type.Union([Type.Literal('in'), Type.Literal('out'), Type.Literal('both')], { default: 'both', description: 'in: what the caller says; out: what the call is sent; both' })),
  }, { additionalProperties: false }),
  run: async (ctx, o) => {
    await ctx.need('transcribe')(ctx.call, { on: true, ...(o.language ? { language: o.language } : {}), direction: o.direction ?? 'both' })
    ctx.vars.set('callplane.transcribe.direction', o.direction ?? 'both')
    return { outcome: 'transcribing' }
  },
})

export const transcribeStop = defineVerb({
  type: 'transcribe_stop', summary: 'Stop live transcription',
  option: Type.Object({}, { additionalProperties: false }),
  run: async (ctx) => { await ctx.need('transcribe')(ctx.call, { on: false }); return { outcome: 'stopped' } },
})

export const externalMediaStart = defineVerb({
  type: 'external_media_start', summary: 'Fork the call\'s audio to a WebSocket the engine connects to',
  option: Type.Object({
    url: Type.Optional(Type.String({ minLength: 1, maxLength: 2000, pattern: '^wss?://', description: 'ws:// or wss:// URL' })),
    external_host: Type.Optional(Type.String({ minLength: 1, maxLength: 300, pattern: '^[A-Za-z0-9.\\-\\[\\]:]+$', description: 'VoipBin\'s host:port; connected to as ws://host:port' })),
    encapsulation: Type.Optional(Type.Union([Type.Literal('twilio'), Type.Literal('raw'), Type.Literal('pcmu'), Type.Literal('sln')], { default: 'twilio', description: 'twilio: Media Streams JSON; raw (= VoipBin sln): 16-bit PCM 8 kHz; pcmu: µ-law' })),
  }, { additionalProperties: false }),
  check: (o) => ((o.url === undefined) === (o.external_host === undefined) ? ['url: give url or external_host'] : []),
  run: async (ctx, o) => {
    const url = o.url ?? `ws://${o.external_host}`
    const encapsulation = o.encapsulation === 'sln' ? 'raw' : o.encapsulation ?? 'twilio'
    await ctx.need('externalMedia')(ctx.call, { on: true, url, encapsulation })
    return { outcome: 'streaming' }
  },
})

export const externalMediaStop = defineVerb({
  type: 'external_media_stop', summary: 'Stop the external media fork',
  option: Type.Object({}, { additionalProperties: false }),
  run: async (ctx) => { await ctx.need('externalMedia')(ctx.call, { on: false }); return { outcome: 'stopped' } },
})

export const RECORD_VERBS = [recordingStart, recordingStop, transcribeStart, transcribeStop, externalMediaStart, externalMediaStop]
