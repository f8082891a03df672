import t from 'tap'
import { rerunSuites } from '../harness/suite-rerun.ts'

/**
 * Drain, agent-call, SIP-conversation and event suites again with
 * MEDIA_WORKERS=2 (agents run in the media workers). Split from
 * media-workers-media-suites.test.ts so the two halves run in parallel.
 */
t.test('call suites with MEDIA_WORKERS=2', async (t) => {
  await rerunSuites(t, [
    'test/engine/drain.test.ts',
    'test/call/agent-call.test.ts',
    'test/agent/sip-conversation.test.ts',
    'test/control-api/e2e-events.test.ts',
  ], { MEDIA_WORKERS: '2' }, 'with MEDIA_WORKERS=2')
})
