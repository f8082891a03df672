/**
 * Table-driven, part 3: agent settings that cannot mean anything are refused
 * with a 400 that says why (through the REST API, POST and PATCH), and what a
 * refused write leaves behind is the agent as it was. The effect of every
 * accepted field on a real call is in agent-fields-lines / agent-fields-turns.
 */
import t from 'tap'
import { buildTestApp, call } from '../control-api/helpers.ts'

t.test('agent settings that would do nothing are refused with 400', async (t) => {
  const h = await buildTestApp()
  t.teardown(() => h.close())
  const post = (body: Record<string, unknown>) => call(h.app, h.adminKey, 'POST', '/v1/agents', { name: 'x', ...body })

  const refused: Array<{ why: string; body: Record<string, unknown>; path: string; message: RegExp }> = [
    { why: 'unknown TTS provider lists the TTS providers', body: { tts: { provider: 'polly' } }, path: '/tts/provider', message: /"polly" is not a tts provider \(there are: .*espeak.*openai.*elevenlabs/ },
    { why: 'unknown STT provider lists the STT providers', body: { stt: { provider: 'whisper' } }, path: '/stt/provider', message: /there are: .*pocketsphinx.*deepgram/ },
    { why: 'unknown LLM provider lists the LLM providers', body: { llm: { provider: 'claude' } }, path: '/llm/provider', message: /there are: (?=.*scripted)(?=.*openai)/ },
    { why: 'model on a provider without models', body: { tts: { provider: 'espeak', model: 'tts-1' } }, path: '/tts/model', message: /espeak has no model choice/ },
    { why: 'model on the scripted LLM', body: { llm: { provider: 'scripted', model: 'gpt-4o' } }, path: '/llm/model', message: /scripted has no model choice/ },
    { why: 'voice on an STT', body: { stt: { provider: 'deepgram', voice: 'alloy' } }, path: '/stt/voice', message: /deepgram has no voices/ },
    { why: 'an option the provider does not read', body: { tts: { provider: 'espeak', options: { pitch: 50 } } }, path: '/tts/options/pitch', message: /not an option of espeak \(it reads: voice, speed\)/ },
    { why: 'a misspelt option', body: { llm: { provider: 'openai', options: { temprature: 0.2 } } }, path: '/llm/options/temprature', message: /not an option of openai/ },
    { why: 'a language the offline STT cannot recognise', body: { language: 'fr-FR' }, path: '/language', message: /pocketsphinx has English only/ },
    { why: 'VAD threshold out of range', body: { vadSettings: { threshold: 1.5 } }, path: '/vadSettings/threshold', message: /threshold/ },
    { why: 'unknown VAD setting', body: { vadSettings: { eagerness: 'high' } }, path: '/vadSettings', message: /eagerness|additional/ },
  ]
  for (const r of refused) {
    const res = await post(r.body)
    t.equal(res.statusCode, 400, `${r.why}: 400`)
    const err = (res.json() as { error: { message: string; details?: unknown } }).error
    t.match(err.message, r.message, `${r.why}: ${err.message}`)
    t.match(JSON.stringify(err), r.path.split('/')[1]!, 'names the field')
  }

  // Accepted: what each provider does read.
  const accepted: Array<Record<string, unknown>> = [
    { tts: { provider: 'espeak', voice: 'en-us+f3', options: { speed: 200 } } },
    { tts: { provider: 'elevenlabs', model: 'eleven_flash_v2_5', voice: 'abc' } },
    { tts: { provider: 'openai', model: 'tts-1', voice: 'alloy' } },
    { stt: { provider: 'deepgram', model: 'nova-2', options: { endpointingMs: 300 } }, language: 'fr-FR' },
    { llm: { provider: 'openai', model: 'gpt-4o-mini', options: { baseURL: 'http://127.0.0.1:9/v1', temperature: 0.2 } } },
    { vad: 'energy', vadSettings: { threshold: 0.7, silenceMs: 800, prefixPaddingMs: 300 } },
    { greetingOutbound: 'Hi {{name}}', aiSpeaksFirstOutbound: false, recording: { enabled: true, disclosure: 'Recorded.' } },
    { transferTargets: [{ name: 'sales', destination: '+14155550100', whisper: 'A caller for sales' }], bargeIn: { resumeAfterMs: 500 } },
  ]
  for (const body of accepted) {
    const res = await post(body)
    t.equal(res.statusCode, 201, `accepted: ${JSON.stringify(body)} (${res.body.slice(0, 200)})`)
    t.match(res.json(), body, 'stored as sent')
  }

  // PATCH is checked against the agent as it would become, and a refused patch changes nothing.
  const a = (await post({ stt: { provider: 'deepgram' }, language: 'de-DE' })).json() as { id: string }
  const bad = await call(h.app, h.adminKey, 'PATCH', `/v1/agents/${a.id}`, { stt: null })
  t.equal(bad.statusCode, 400, 'dropping the cloud STT under a German agent is refused')
  t.match((await call(h.app, h.adminKey, 'GET', `/v1/agents/${a.id}`)).json(), { stt: { provider: 'deepgram' }, language: 'de-DE' }, 'and the agent is unchanged')
  const polly = await call(h.app, h.adminKey, 'PATCH', `/v1/agents/${a.id}`, { tts: { provider: 'polly' } })
  t.equal(polly.statusCode, 400, 'PATCH with an unknown provider: 400')
  const ok = await call(h.app, h.adminKey, 'PATCH', `/v1/agents/${a.id}`, { vadSettings: { silenceMs: 1200 }, greetingOutbound: 'Hello there' })
  t.equal(ok.statusCode, 200, 'PATCH of the new fields')
  t.match(ok.json(), { vadSettings: { silenceMs: 1200 }, greetingOutbound: 'Hello there' })
})
