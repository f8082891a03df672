/**
 * The optional end-of-call summary (`summary: true`): the agent's own LLM
 * reads the transcript after the hangup and writes a few sentences. The
 * request carries `purpose: 'summary'` and no tools, bounded in time.
 */
import type { LlmAdapter } from './adapters/llm/contract.ts'

const DEFAULT_SUMMARY_PROMPT = 'Summarize this phone call in two sentences.'

export async function summarizeCall(llm: LlmAdapter, transcriptText: string, prompt: string | undefined, timeoutMs: number): Promise<string | undefined> {
  if (!transcriptText) return undefined
  const signal = AbortSignal.timeout(timeoutMs)
  let out = ''
  for await (const c of llm.chat({
    messages: [
      { role: 'system', content: prompt ?? DEFAULT_SUMMARY_PROMPT },
      { role: 'user', content: transcriptText },
    ],
    tools: [],
    signal,
    purpose: 'summary',
  })) {
    if (c.type === 'text') out += c.text
  }
  return out.trim() || undefined
}
