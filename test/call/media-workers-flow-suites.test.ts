import t from 'tap'
import { rerunSuites } from '../harness/suite-rerun.ts'

/**
 * The flow suites again with MEDIA_WORKERS=2: the interpreter runs on the
 * main thread and every prompt, listen and transcription it starts runs in
 * the media worker that holds the call. Its own file so it runs in parallel
 * with the other MEDIA_WORKERS reruns, each well inside tap's 300 s.
 */
t.test('flow suites with MEDIA_WORKERS=2', async (t) => {
  await rerunSuites(t, [
    'test/call/flow-ivr.test.ts',
    'test/call/flow-webhook-app.test.ts',
  ], { MEDIA_WORKERS: '2' }, 'with MEDIA_WORKERS=2')
})
