import t from 'tap'
import { rerunSuites } from '../harness/suite-rerun.ts'

/**
 * The flow suites again with MEDIA_WORKERS=2: the interpreter runs on the
 * main thread and every prompt, listen and transcription it starts runs in
 * the media worker that holds the call (a connect's bridge may join two
 * workers over a FrameLink). Its own file so it runs in parallel
 * with the other MEDIA_WORKERS reruns.
 */
t.test('flow suites with MEDIA_WORKERS=2', async (t) => {
  await rerunSuites(t, [
    'test/call/flow-ivr.test.ts',
    'test/call/flow-webhook-app.test.ts',
    'test/call/flow-verbs.test.ts',
    'test/call/flow-connect.test.ts',
  ], { MEDIA_WORKERS: '2' }, 'with MEDIA_WORKERS=2')
})
