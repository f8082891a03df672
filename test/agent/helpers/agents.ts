/** Shared agent definitions for runtime tests (offline adapters only). */
import type { AgentConfigInput } from '../../../agent/config.ts'

export const GREETING = 'Hello, thanks for calling Acme. How can I help you?'
// Replies the caller side must recognise were picked from phrases pocketsphinx decodes reliably from espeak-ng
// at 8 kHz (many are not: recognition of synthetic speech is phrase-dependent).
export const HOURS_REPLY = 'We are open every day until six.'
export const BYE_REPLY = 'Thank you for calling. Have a good day.'
export const LONG_REPLY =
  'Our store has a long history. It was founded many years ago by two friends. They sold books and maps and tea. Later they added coffee and cake. Today we have ten shops in the region, and we still sell books.'

export function acmeAgent(extra: AgentConfigInput = {}): AgentConfigInput {
  return {
    greeting: GREETING,
    llm: {
      provider: 'scripted',
      options: {
        rules: [
          { phrases: ['what are your opening hours'], reply: HOURS_REPLY },
          { phrases: ['tell me about the store'], reply: LONG_REPLY },
          { phrases: ['goodbye'], reply: BYE_REPLY, endCall: true },
          { phrases: ['talk to a human'], reply: 'Transferring you now.', transferTo: 'sales' },
          { dtmf: '1', reply: 'You pressed one.' },
        ],
        fallback: 'Sorry, could you say that again?',
      },
    },
    transferTargets: [{ name: 'sales', number: 'sip:sales@example.com' }],
    ...extra,
  }
}

/** Indices [start, end) of outbound talk spurts (runs of non-null frames, gaps ≤ gapFrames merged). */
export function spurts(out: Array<{ samples: Int16Array | null }>, from = 0, gapFrames = 15): Array<[number, number]> {
  const res: Array<[number, number]> = []
  let start = -1
  let lastVoice = -1
  for (let i = from; i < out.length; i++) {
    if (out[i]!.samples) {
      if (start < 0) start = i
      else if (i - lastVoice > gapFrames) {
        res.push([start, lastVoice + 1])
        start = i
      }
      lastVoice = i
    }
  }
  if (start >= 0) res.push([start, lastVoice + 1])
  return res
}
