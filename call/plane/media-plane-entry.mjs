// Worker bootstrap when running from TypeScript sources: worker threads do not
// inherit the parent's module hooks, so register tsx here, then load the media
// plane (a compiled build starts media-plane-worker.js directly).
import { register } from 'tsx/esm/api'

register()
await import('./media-plane-worker.ts')
