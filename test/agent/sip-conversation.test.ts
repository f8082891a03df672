/**
 * A full call over SIP and RTP with the offline pipeline, nothing simulated:
 * baresip calls a number whose target is an agent created through the store,
 * its microphone is a WAV of an espeak-ng utterance (aufile); pocketsphinx in
 * grammar mode (the agent's own phrases) recognises it, the scripted model
 * answers by the agent's own rules, espeak-ng speaks, the MediaEngine sends
 * RTP, baresip decodes and dumps what it heard (sndfile), and pocketsphinx
 * must recognise the expected words in that dump.
 */
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseWav } from '../../media/wav.ts'
import { runBaresip } from '../harness/baresip.ts'
import { freePort } from '../harness/ports.ts'
import { startSipStack, waitFor } from '../sip/app/helpers.ts'
import { recognize } from './helpers/recognize.ts'

const QUESTION = 'what are your opening hours'
// Reply wording picked from phrases pocketsphinx decodes reliably from espeak-ng at 8 kHz (see helpers/agents.ts).
const ANSWER = 'We are open every day until six.'
const OTHER = 'Thank you for calling. Have a good day.'

const words = (s: string): string => s.toLowerCase().replace(/[^a-z ]/g, ' ').replace(/\s+/g, ' ').trim()

/** espeak-ng → 8 kHz 16-bit mono WAV (aufile's format for G.711), with leading and trailing silence. */
function callerWav(dir: string, text: string, leadS: number, tailS: number): string {
  const raw = join(dir, 'raw.wav')
  const out = join(dir, 'caller.wav')
  execFileSync('espeak-ng', ['-v', 'en-us', '-w', raw, '--', text])
  execFileSync('sox', [raw, '-r', '8000', '-c', '1', '-b', '16', '-e', 'signed-integer', out, 'pad', String(leadS), String(tailS)])
  return out
}

t.test('baresip asks a question over SIP/RTP; the agent recognises it and answers; the caller hears the answer', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'agent-sip-conv-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const stack = await startSipStack({ realMedia: true })
  t.teardown(() => stack.stop())
  const { store, accountId } = stack
  // baresip sends from 127.0.0.1: that is the carrier here.
  const trunk = await store.trunks.create(accountId, { name: 'carrier', inbound: { allowedIps: ['127.0.0.1'] } })
  const agent = await store.agents.create(accountId, {
    name: 'opening-hours',
    greeting: 'Hello.',
    // The agent's own grammar: the phrases its callers are expected to say.
    stt: { provider: 'pocketsphinx', options: { phrases: [QUESTION, 'goodbye', 'talk to a human'] } },
    rules: [
      { match: 'opening hours|when are you open', reply: ANSWER },
      { match: 'goodbye', reply: OTHER, hangup: true },
    ],
  })
  await store.numbers.create(accountId, { number: '+14155550177', trunkId: trunk.id, target: { type: 'agent', id: agent.id } })

  // The question starts well after the short greeting: on a loaded box the
  // agent's start (decoder, synthesis) has been seen to take 5 s, and words
  // said before the agent listens are lost, as on any line. The silent tail
  // outlasts the call: at the end of its file aufile stops the source, and the
  // far end's loss concealment then sounds like the caller talking over the answer.
  const seconds = 28
  const source = callerWav(dir, QUESTION, 8, seconds)
  const run = runBaresip({ source, dial: `sip:+14155550177@127.0.0.1:${stack.sipPort}`, seconds, sipPort: await freePort() })
  t.teardown(() => run.kill())
  const res = await run.done

  const call = await waitFor(async () => {
    const { rows } = await store.db.pool.query(`SELECT id FROM calls WHERE trunk_id = $1 AND status = 'completed'`, [trunk.id])
    return rows[0] ? store.calls.getById(rows[0].id) : null
  }, 15_000, 'completed call').catch((err: Error) => {
    throw new Error(`${err.message}; baresip log: ${res.log.slice(-1500)}`)
  })
  t.match(call, { status: 'completed', agentId: agent.id }, 'the call reached the agent and ended')
  // The transcript is persisted when the agent ends (after the BYE): wait for it.
  const transcript = await waitFor(async () => {
    const c = await store.calls.getById(call!.id)
    return c?.transcript.some((e) => e.role === 'user') ? c.transcript : null
  }, 15_000, 'user turn in the stored transcript').catch(async () => (await store.calls.getById(call!.id))?.transcript ?? [])
  t.comment(`stored transcript: ${JSON.stringify(transcript)}`)
  const user = transcript.find((e) => e.role === 'user')
  t.match(user, { text: QUESTION, source: 'grammar' }, 'offline STT recognised the caller word for word, in grammar mode')
  t.ok(transcript.some((e) => e.role === 'assistant' && e.text === ANSWER), 'the agent\'s rule answered (stored transcript)')

  t.ok(res.heardWav, 'baresip dumped what it heard')
  const heard = parseWav(readFileSync(res.heardWav!))
  t.equal(heard.sampleRate, 8000)
  t.comment(`heard ${(heard.pcm.length / 8000).toFixed(1)} s`)
  const recognised = await recognize(heard.pcm, [ANSWER])
  t.equal(words(recognised.join(' ')), words(ANSWER), `the caller's recording contains the answer (heard: ${JSON.stringify(recognised)})`)
  // Negative control: the same check does not find words that were never said.
  t.not(words((await recognize(heard.pcm, [OTHER])).join(' ')), words(OTHER), 'and not a line the agent never spoke')
})
