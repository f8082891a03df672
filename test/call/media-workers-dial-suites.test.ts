import t from 'tap'
import { rerunSuites } from '../harness/suite-rerun.ts'

/**
 * The verb tour and the dialling suites again with MEDIA_WORKERS=2: a
 * connect's bridge may join calls on two workers over a FrameLink. Split
 * from media-workers-flow-suites.test.ts so each file stays well inside
 * tap's 300 s and the two run in parallel.
 */
t.test('verb and dialling suites with MEDIA_WORKERS=2', async (t) => {
  await rerunSuites(t, [
    'test/call/flow-verbs.test.ts',
    'test/call/flow-connect.test.ts',
  ], { MEDIA_WORKERS: '2' }, 'with MEDIA_WORKERS=2')
})
