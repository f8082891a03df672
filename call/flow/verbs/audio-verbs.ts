import { Type, type Static } from '@sinclair/typebox'
import type { ListenRequest, PromptRequest } from '../../call-control.ts'
import { defineVerb, sleepFor, type VerbContext } from '../verb.ts'

/** The verbs that speak, play and listen: talk, play, digits_receive, digits_send, gather. */

const Language = Type.String({ minLength: 2, maxLength: 35, description: 'BCP 47, e.g. en-US' })
const Voice = Type.String({ minLength: 1, maxLength: 200, description: 'The TTS voice (the agent\'s TTS on an agent call, else espeak-ng: an espeak voice such as en-us or de)' })
const MediaUrl = Type.String({ minLength: 1, maxLength: 2000, pattern: '^(https?|file)://', description: 'WAV or MP3; file:// only under the media directory' })
const DigitsHandle = Type.Union([Type.Literal(''), Type.Literal('next')], { description: 'next: a key pressed by the caller stops it and the flow goes on' })
const Key = Type.String({ pattern: '^[0-9*#A-D]$' })

/**
 * espeak-ng's voice variants for VoipBin's `gender`, used when no voice is
 * named: `<language>+f3` / `+m3`. Other TTS providers get an explicit voice.
 */
function voiceFor(o: { voice?: string | undefined; voice_id?: string | undefined; gender?: string | undefined; language?: string | undefined }): string | undefined {
  if (o.voice ?? o.voice_id) return o.voice ?? o.voice_id
  if (!o.gender || o.gender === 'neutral') return undefined
  return `${(o.language ?? 'en-us').toLowerCase()}+${o.gender === 'female' ? 'f3' : 'm3'}`
}

const TalkOption = Type.Object({
  text: Type.String({ minLength: 1, maxLength: 5000 }),
  language: Type.Optional(Language),
  voice: Type.Optional(Voice),
  voice_id: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'VoipBin\'s name for voice' })),
  gender: Type.Optional(Type.Union([Type.Literal('male'), Type.Literal('female'), Type.Literal('neutral')], { description: 'Without a voice: espeak-ng\'s male or female variant' })),
  digits_handle: Type.Optional(DigitsHandle),
  async: Type.Optional(Type.Boolean({ default: false, description: 'Go on at once while it plays' })),
}, { additionalProperties: false })

function talkPrompt(o: Static<typeof TalkOption>): PromptRequest {
  const voice = voiceFor(o)
  return { say: { text: o.text, ...(voice ? { voice } : {}), ...(o.language ? { language: o.language } : {}) }, ...(o.digits_handle === 'next' ? { stopOnDigit: true } : {}) }
}

/** A prompt's result as the flow sees it: a stopping key becomes the digits received. */
async function runPrompt(ctx: VerbContext, p: PromptRequest, async = false): Promise<{ outcome: string }> {
  const prompt = ctx.need('prompt')
  if (async) {
    void prompt(ctx.call, p).catch((err: unknown) => ctx.log.warn({ err }, 'async prompt failed'))
    return { outcome: 'started' }
  }
  const r = await prompt(ctx.call, p)
  if (r.result === 'digit' && r.digit) ctx.vars.set('callplane.call.digits', r.digit)
  return { outcome: r.result }
}

export const talk = defineVerb({
  type: 'talk', summary: 'Say text (TTS)',
  option: TalkOption,
  check: (o) => [
    ...(o.voice && o.voice_id ? ['voice_id: give voice or voice_id, not both'] : []),
    ...(o.gender && (o.voice || o.voice_id) ? ['gender: only without voice or voice_id (it picks the espeak-ng variant when no voice is named)'] : []),
  ],
  run: (ctx, o) => runPrompt(ctx, talkPrompt(o), o.async ?? false),
})

export const play = defineVerb({
  type: 'play', summary: 'Play audio files in order',
  option: Type.Object({
    stream_urls: Type.Array(MediaUrl, { minItems: 1, maxItems: 20 }),
    loop: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 1, description: 'Times through the list' })),
    digits_handle: Type.Optional(DigitsHandle),
  }, { additionalProperties: false }),
  run: (ctx, o) => runPrompt(ctx, { play: { urls: o.stream_urls, ...(o.loop ? { loop: o.loop } : {}) }, ...(o.digits_handle === 'next' ? { stopOnDigit: true } : {}) }),
})

/** Stores a listen's result in the flow's variables (the names a branch reads). */
function keepListenResult(ctx: VerbContext, r: Awaited<ReturnType<NonNullable<VerbContext['control']['listen']>>>): void {
  ctx.vars.set('callplane.call.digits', r.digits)
  ctx.vars.set('callplane.gather.digits', r.digits)
  ctx.vars.set('callplane.gather.reason', r.reason)
  ctx.vars.set('callplane.gather.speech', r.speech?.text ?? '')
  ctx.vars.set('callplane.gather.confidence', r.speech?.confidence !== undefined ? String(r.speech.confidence) : '')
}

export const digitsReceive = defineVerb({
  type: 'digits_receive', summary: 'Collect DTMF digits (RFC 4733 or SIP INFO) into ${callplane.call.digits}',
  option: Type.Object({
    duration: Type.Integer({ minimum: 100, maximum: 600_000, description: 'Milliseconds to wait' }),
    key: Type.Optional(Key),
    length: Type.Optional(Type.Integer({ minimum: 1, maximum: 64, default: 1, description: 'Digits to collect' })),
  }, { additionalProperties: false }),
  run: async (ctx, o) => {
    const req: ListenRequest = { digits: { max: o.length ?? (o.key ? 64 : 1), ...(o.key ? { finishKey: o.key } : {}) }, timeoutMs: o.duration, maxDurationMs: o.duration }
    const r = await ctx.need('listen')(ctx.call, req)
    keepListenResult(ctx, r)
    return { outcome: r.reason }
  },
})

export const digitsSend = defineVerb({
  type: 'digits_send', summary: 'Send DTMF digits to the call',
  option: Type.Object({
    digits: Type.String({ pattern: '^[0-9A-Da-d*#]{1,100}$' }),
    duration: Type.Optional(Type.Integer({ minimum: 40, maximum: 2000, default: 100, description: 'Milliseconds per tone' })),
    interval: Type.Optional(Type.Integer({ minimum: 0, maximum: 5000, default: 40, description: 'Milliseconds between tones' })),
  }, { additionalProperties: false }),
  run: async (ctx, o) => {
    const send = ctx.need('sendDtmf')
    const duration = o.duration ?? 100
    for (const d of o.digits) {
      if (ctx.signal.aborted) return { outcome: 'stopped' }
      await send(ctx.call, { digits: d, durationMs: duration })
      await sleepFor(duration + (o.interval ?? 40), ctx.signal)
    }
    return { outcome: 'sent' }
  },
})

export const GatherOption = Type.Object({
  input: Type.Optional(Type.Array(Type.Union([Type.Literal('digits'), Type.Literal('speech')]), { minItems: 1, maxItems: 2, uniqueItems: true, default: ['digits'] })),
  text: Type.Optional(Type.String({ minLength: 1, maxLength: 5000, description: 'Prompt said first (TTS)' })),
  stream_urls: Type.Optional(Type.Array(MediaUrl, { minItems: 1, maxItems: 20, description: 'Prompt played first, instead of text' })),
  language: Type.Optional(Language),
  voice: Type.Optional(Voice),
  min_digits: Type.Optional(Type.Integer({ minimum: 1, maximum: 64, default: 1 })),
  max_digits: Type.Optional(Type.Integer({ minimum: 1, maximum: 64, default: 1 })),
  finish_key: Type.Optional(Key),
  timeout: Type.Optional(Type.Integer({ minimum: 100, maximum: 120_000, default: 5000, description: 'Milliseconds to wait for input after the prompt' })),
  inter_digit_timeout: Type.Optional(Type.Integer({ minimum: 100, maximum: 60_000, default: 3000, description: 'Milliseconds between digits' })),
  hints: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { maxItems: 200, description: 'Words or phrases to expect; the offline recognizer listens only for these' })),
  action_url: Type.Optional(Type.String({ minLength: 1, maxLength: 2000, pattern: '^https?://', description: 'Webhook app: the result is POSTed here and the verbs it returns run next' })),
  action_method: Type.Optional(Type.Union([Type.Literal('POST'), Type.Literal('GET')], { default: 'POST' })),
}, { additionalProperties: false })

export const gather = defineVerb({
  type: 'gather', summary: 'Prompt, then collect DTMF and/or speech; the result is in ${callplane.gather.*} and ${callplane.call.digits}',
  option: GatherOption,
  check: (o) => [
    ...(o.text && o.stream_urls ? ['stream_urls: give text or stream_urls, not both'] : []),
    ...(o.voice && !o.text ? ['voice: only with a text prompt'] : []),
    ...(o.action_method && !o.action_url ? ['action_method: only with action_url'] : []),
    ...((o.min_digits ?? 1) > (o.max_digits ?? Math.max(1, o.min_digits ?? 1)) ? ['min_digits: must not exceed max_digits'] : []),
    ...(o.hints && !(o.input ?? ['digits']).includes('speech') ? ['hints: only with input speech'] : []),
    ...((o.finish_key || o.max_digits || o.min_digits || o.inter_digit_timeout) && !(o.input ?? ['digits']).includes('digits') ? ['input: digit options need input digits'] : []),
  ],
  run: async (ctx, o, action) => {
    const input = o.input ?? ['digits']
    const prompt: PromptRequest | undefined = o.text
      ? { say: { text: o.text, ...(o.voice ? { voice: o.voice } : {}), ...(o.language ? { language: o.language } : {}) } }
      : o.stream_urls ? { play: { urls: o.stream_urls } } : undefined
    const req: ListenRequest = {
      timeoutMs: o.timeout ?? 5000,
      ...(prompt ? { prompt } : {}),
      ...(input.includes('digits') ? { digits: { max: o.max_digits ?? Math.max(1, o.min_digits ?? 1), ...(o.min_digits ? { min: o.min_digits } : {}), ...(o.finish_key ? { finishKey: o.finish_key } : {}), interDigitTimeoutMs: o.inter_digit_timeout ?? 3000 } } : {}),
      ...(input.includes('speech') ? { speech: { ...(o.hints ? { hints: o.hints } : {}), ...(o.language ? { language: o.language } : {}) } } : {}),
    }
    const r = await ctx.need('listen')(ctx.call, req)
    keepListenResult(ctx, r)
    if (o.action_url && r.reason !== 'ended' && r.reason !== 'stopped') {
      const actions = await ctx.services.app.fetchActions(ctx, { url: o.action_url, method: o.action_method ?? 'POST', event: 'gather', actionId: action.id,
        data: { reason: r.reason, digits: r.digits, ...(r.speech ? { speech: r.speech } : {}) } })
      return { replace: actions, outcome: r.reason }
    }
    return { outcome: r.reason }
  },
})

export const AUDIO_VERBS = [talk, play, digitsReceive, digitsSend, gather]
