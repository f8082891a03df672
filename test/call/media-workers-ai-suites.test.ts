import t from 'tap'
import { rerunSuites } from '../harness/suite-rerun.ts'

/**
 * The AI verbs again with MEDIA_WORKERS=2: the flow runs on the main thread,
 * and the agent an `ai_talk` puts on the call, like an `amd`'s detector, runs
 * in the media worker that holds the call (agentTalk and detectMachine cross
 * the worker boundary as plane actions). Its own file so it runs in parallel
 * with the other MEDIA_WORKERS reruns.
 */
t.test('AI verb suites with MEDIA_WORKERS=2', async (t) => {
  await rerunSuites(t, ['test/call/flow-ai.test.ts'], { MEDIA_WORKERS: '2' }, 'with MEDIA_WORKERS=2')
})
