import t from 'tap'
import { rerunSuites } from '../harness/suite-rerun.ts'

/**
 * The media-action, conference, rtpengine and media-primitive suites again with MEDIA_WORKERS=2
 * (their stacks run media in two worker threads). Split from
 * media-workers-call-suites.test.ts so the two halves run in parallel.
 */
t.test('media suites with MEDIA_WORKERS=2', async (t) => {
  await rerunSuites(t, [
    'test/call/media-actions.test.ts',
    'test/call/conference.test.ts',
    'test/call/media-actions-extra.test.ts',
    'test/call/media-rtpengine.test.ts',
    'test/call/media-primitives.test.ts',
  ], { MEDIA_WORKERS: '2' }, 'with MEDIA_WORKERS=2')
})
