// Worker bootstrap when running from TypeScript sources: worker threads do not
// inherit the parent's module hooks, so register tsx here, then load the
// worker module: media/worker.ts, or the one named in workerData.entry
// (sip/app/media-plane-worker.ts).
import { workerData } from 'node:worker_threads'
import { register } from 'tsx/esm/api'

register()
await import(workerData?.entry ?? './worker.ts')
