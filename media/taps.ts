/**
 * Taps on a call's audio: a WAV recording or a WebSocket fork attached to a
 * MediaSession as a sink. The session knows neither; it delivers frames to
 * its sinks and says 'closed', on which a tap ends (the WAV is finalised, the
 * fork sends its 'stop').
 */
import type { MediaSession, SessionDtmfEvent } from './session/media-session.ts'
import { WavRecorder, type RecordingMode, type RecordingResult } from './recorder.ts'
import { WebSocketFork, type ForkOptions } from './fork.ts'

/** Each tap's 'closed' listener, removed when the tap is stopped first. */
const endWithSession = new WeakMap<WavRecorder | WebSocketFork, () => void>()

function attachEnd(session: MediaSession, tap: WavRecorder | WebSocketFork, end: () => void): void {
  endWithSession.set(tap, end)
  session.once('closed', end)
}

function detachEnd(session: MediaSession, tap: WavRecorder | WebSocketFork): void {
  const end = endWithSession.get(tap)
  if (end) { session.off('closed', end); endWithSession.delete(tap) }
}

/** Starts a WAV recording of the session (stereo: caller left, us right). Stop with stopRecording. */
export function startRecording(session: MediaSession, path: string, mode: RecordingMode = 'stereo'): WavRecorder {
  if (session.isClosed) throw new Error(`media session ${session.id} is closed`)
  const rec = new WavRecorder({ path, sampleRate: session.codecSampleRate(), mode })
  session.addSink(rec)
  // Recordings end with the call.
  attachEnd(session, rec, () => { rec.close() })
  return rec
}

export function stopRecording(session: MediaSession, rec: WavRecorder): RecordingResult {
  session.removeSink(rec)
  detachEnd(session, rec)
  return rec.close()
}

/** Forks the session's audio to a WebSocket (L16, PCMU or Twilio Media Streams); resolves once connected. */
export async function startFork(session: MediaSession, opts: ForkOptions): Promise<WebSocketFork> {
  if (session.isClosed) throw new Error(`media session ${session.id} is closed`)
  const fork = new WebSocketFork(session, opts)
  await fork.opened
  session.addSink(fork)
  const onDtmf = (e: SessionDtmfEvent) => fork.onDtmf(e.digit)
  session.on('dtmf', onDtmf)
  // A fork sends its 'stop' when the call ends.
  attachEnd(session, fork, () => { void fork.close() })
  fork.onClose(() => session.off('dtmf', onDtmf))
  return fork
}

export async function stopFork(session: MediaSession, fork: WebSocketFork): Promise<void> {
  session.removeSink(fork)
  detachEnd(session, fork)
  await fork.close()
}
