/**
 * Table-driven, part 4: the agent fields that act on outbound calls and on
 * transfers, through the REST API on real SIP/RTP: POST /v1/calls with an
 * agent to a sipp callee whose RTP the test owns (greetingOutbound,
 * aiSpeaksFirstOutbound, the call's metadata as {{variables}}), and an
 * inbound caller transferred by a rule to a target with a whisper.
 */
import t, { type Test } from 'tap'
import { speechPcm } from './helpers/audio.ts'
import { answeringParty, fieldLab, frames, sleep, voiced, waitUntil, type LiveCall } from './helpers/field-lab.ts'
import { RtpCaller } from '../sip/app/rtp-caller.ts'
import { startOpenAiFake } from './fakes/openai-server.ts'
import { startDeepgramFake } from './fakes/deepgram-server.ts'

const NUMBER = '+14155550187'
const assistant = (call: LiveCall) => call.said().filter((e) => e.role === 'assistant')

t.test('agent fields on outbound calls and transfers', async (t) => {
  const lab = await fieldLab(NUMBER)
  t.teardown(() => lab.close())
  const base = { greeting: 'Hello, thanks for calling.' }

  const rows: Array<{ field: string; run: (t: Test) => Promise<void> }> = [
    {
      field: 'greetingOutbound with the call\'s metadata as {{variables}}',
      async run(t) {
        const agentId = await lab.agent(base, { greetingOutbound: 'Hi {{name}}, this is {{agentName}} about order {{order}}.', metadata: { name: 'nobody', order: '0' } })
        const call = await lab.dial((fn) => t.teardown(fn), { agentId, metadata: { name: 'Bob', order: '42' } })
        const g = await waitUntil(() => assistant(call)[0], 30_000, 'greeting')
        t.equal(g.text, 'Hi Bob, this is fields about order 42.', 'the outbound greeting, the call\'s metadata winning over the agent\'s')
        t.ok(frames(call.caller.audioSince(0)).filter(voiced).length > 25, 'the callee heard it')
        await call.hangup()
      },
    },
    {
      field: 'inbound calls keep greeting',
      async run(t) {
        await lab.agent(base, { greetingOutbound: 'Hi, this is an outbound call.' })
        const call = await lab.call((fn) => t.teardown(fn))
        t.equal((await waitUntil(() => assistant(call)[0], 30_000, 'greeting')).text, base.greeting)
        await call.hangup()
      },
    },
    {
      field: 'aiSpeaksFirstOutbound: false',
      async run(t) {
        const agentId = await lab.agent(base, { aiSpeaksFirstOutbound: false, expectedPhrases: ['hello who is this'], rules: [{ match: 'who is this', reply: 'This is the test line calling.' }] })
        const call = await lab.dial((fn) => t.teardown(fn), { agentId })
        await sleep(4000)
        t.equal(frames(call.caller.audioSince(0)).filter(voiced).length, 0, 'the agent waits for the callee')
        await call.say(speechPcm('hello who is this'))
        const reply = await waitUntil(() => assistant(call)[0], 20_000, 'reply')
        t.equal(reply.text, 'This is the test line calling.', 'and answers the callee')
        await call.hangup()
      },
    },
    {
      field: 'transferTargets[].whisper',
      async run(t) {
        const target = new RtpCaller()
        await target.start()
        t.teardown(() => target.close())
        const party = await answeringParty(lab.dir, target, (fn) => t.teardown(fn), 1)
        await lab.agent({ greeting: 'Hello.' }, {
          expectedPhrases: ['talk to sales'],
          rules: [{ match: 'sales', reply: 'Connecting you to sales.', transferTo: 'sales' }],
          transferTargets: [{ name: 'sales', destination: party.uri, whisper: 'A caller from {{from}} for sales.' }],
        })
        const call = await lab.call((fn) => t.teardown(fn), 1)
        await waitUntil(() => assistant(call)[0], 30_000, 'greeting')
        await call.say(speechPcm('talk to sales'))
        await waitUntil(() => assistant(call).some((e) => e.text === 'Connecting you to sales.') || null, 20_000, 'transfer line')
        // The caller is silent from here on: anything the target hears before the bridge is the whisper.
        const heard = await waitUntil(() => frames(target.audioSince(0)).filter(voiced).length > 40 || null, 30_000, 'whisper at the target').catch(() => null)
        t.ok(heard, `the target heard the whisper (${frames(target.audioSince(0)).filter(voiced).length} speech frames)`)
        const after = await call.record()
        t.equal(after.status, 'in-progress', 'the caller is now connected to the target')
        await call.hangup()
      },
    },
    {
      field: 'amd.onMachine: hangup',
      async run(t) {
        const agentId = await lab.agent(base, { amd: { onMachine: 'hangup' } })
        const call = await lab.dial((fn) => t.teardown(fn), { agentId })
        // A voicemail greeting: one long monologue from the moment it answers.
        await call.say(speechPcm('Hello, you have reached the voicemail of the test line. Nobody is available to take your call right now. Please leave a message after the tone and we will call you back as soon as we can.'))
        const rec = await call.ended(30_000)
        t.equal(rec.endedReason, 'machine-detected', 'an answering machine: the agent hung up')
        t.equal(assistant(call).length, 0, 'without greeting it')
      },
    },
    {
      field: 'amd.onMachine: leave_message with amd.message and amd.endOfGreetingSilenceMs',
      async run(t) {
        const agentId = await lab.agent(base, { metadata: { shop: 'Acme' }, amd: { onMachine: 'leave_message', message: 'Please call {{shop}} back.', endOfGreetingSilenceMs: 1000, maxWaitMs: 20_000 } })
        const call = await lab.dial((fn) => t.teardown(fn), { agentId })
        const t0 = Date.now()
        const greeting = speechPcm('Hello, you have reached the voicemail of the test line. Nobody is available to take your call right now. Please leave a message after the tone and we will call you back as soon as we can.')
        await call.say(greeting)
        // espeak-ng ends its audio with quiet samples: the machine's silence starts at its last voiced sample, not at the end of the send.
        let lastVoiced = greeting.length - 1
        while (lastVoiced > 0 && Math.abs(greeting[lastVoiced]!) < 300) lastVoiced--
        const spokeUntil = Date.now() - Math.round((greeting.length - 1 - lastVoiced) / 8)
        const rec = await call.ended(40_000)
        t.equal(rec.endedReason, 'voicemail-left', 'the message was left, then the agent hung up')
        const lines = assistant(call)
        t.same(lines.map((e) => e.text), ['Please call Acme back.'], 'the amd.message (with its variables), not the greeting')
        const heard = await call.heardAt(t0, 1)
        t.ok(heard && heard >= spokeUntil + 900, `said after the machine's greeting and 1 s of silence (${heard ? heard - spokeUntil : 'never'} ms after it)`)
      },
    },
    {
      field: 'prompt, llm.model, summary.prompt (OpenAI-compatible server)',
      async run(t) {
        const fake = await startOpenAiFake()
        t.teardown(() => fake.close())
        await lab.agent(base, {
          prompt: 'You are the assistant of {{shop}}. The caller is {{from}}.', metadata: { shop: 'Acme' }, expectedPhrases: ['what are your opening hours'],
          llm: { provider: 'openai', model: 'gpt-test', options: { baseURL: `${fake.baseURL}`, apiKey: 'sk-test' } },
          summary: { enabled: true, prompt: 'Summarise this call for the shop owner.' },
          transferTargets: [{ name: 'sales', destination: '+14155550100', description: 'when the caller wants to buy something' }],
        })
        const call = await lab.call((fn) => t.teardown(fn))
        await waitUntil(() => assistant(call)[0], 30_000, 'greeting')
        await call.say(speechPcm('what are your opening hours'))
        const chat = await waitUntil(() => fake.requests.find((r) => r.path.endsWith('/chat/completions')), 20_000, 'chat request')
        t.equal(chat.body.model, 'gpt-test', 'llm.model reaches the vendor')
        const tools = chat.body.tools as Array<{ function: { name: string; description: string } }>
        t.match(tools.find((x) => x.function.name === 'transfer_call')?.function.description, /"sales": when the caller wants to buy something/, 'transferTargets[].name and description are given to the model')
        const msgs = chat.body.messages as Array<{ role: string; content: string }>
        t.same(msgs[0], { role: 'system', content: 'You are the assistant of Acme. The caller is +14155550100.' }, 'the prompt, with its variables, is the system message')
        await waitUntil(() => assistant(call)[1], 20_000, 'the model\'s reply spoken')
        await call.hangup()
        const summary = await waitUntil(() => fake.requests.find((r) => (r.body.messages as Array<{ content: string }>)[0]?.content === 'Summarise this call for the shop owner.'), 20_000, 'summary request').catch(() => null)
        t.ok(summary, 'summary.prompt is the summary request\'s system message')
      },
    },
    {
      field: 'language, stt.model/options, tts.model/voice (cloud vendors as local servers)',
      async run(t) {
        const openai = await startOpenAiFake()
        t.teardown(() => openai.close())
        const deepgram = await startDeepgramFake(['bonjour'])
        t.teardown(() => deepgram.close())
        await lab.agent({ greeting: 'Bonjour.' }, {
          language: 'fr-FR',
          stt: { provider: 'deepgram', model: 'nova-2', options: { baseUrl: deepgram.url, apiKey: 'good-key', endpointingMs: 700 } },
          tts: { provider: 'openai', model: 'tts-1', voice: 'alloy', options: { baseURL: openai.baseURL, apiKey: 'sk-test' } },
        })
        const call = await lab.call((fn) => t.teardown(fn))
        const speech = await waitUntil(() => openai.requests.find((r) => r.path.endsWith('/audio/speech')), 30_000, 'TTS request')
        t.match(speech.body, { model: 'tts-1', voice: 'alloy', input: 'Bonjour.' }, 'tts.model and tts.voice reach the TTS vendor')
        const q = await waitUntil(() => deepgram.connections[0], 30_000, 'STT connection')
        t.equal(q.get('language'), 'fr-FR', 'language reaches the STT vendor')
        t.equal(q.get('model'), 'nova-2', 'stt.model too')
        t.equal(q.get('endpointing'), '700', 'and the stt options')
        t.ok(await call.heardAt(0, 20_000), 'the caller hears the vendor\'s audio')
        await call.hangup()
      },
    },
  ]
  for (const row of rows) await t.test(row.field, (t) => row.run(t))
})
