/**
 * Public API of the media plane (DESIGN.md "Media path").
 *
 * In-process:
 *   const engine = new MediaEngine({ rtpPortMin, rtpPortMax, bindHost, externalAddress, logger, registry })
 *   const s = await engine.createSession({ codecs: ['PCMU', 'PCMA', 'G722', 'opus'], inactivityTimeoutMs })
 *   const answer = await s.createAnswer(offerSdp)        // UAS; or createOffer() + setRemoteDescription(answer)
 *   s.on('frame', f => …) / s.addSink(sink, { sampleRate: 16000 })   // decoded 20 ms inbound frames
 *   await s.play(source) / s.enqueue(pcm, rate) / s.flush()           // outbound; flush applies next tick
 *   s.sendDtmf('123#'); s.on('dtmf', e => …); s.injectDtmf(d) (SIP INFO)
 *   s.on('timeout', e => hang up with endedReason 'rtp-timeout')
 *   s.mute('in' | 'out' | 'both'); await s.hold() → re-INVITE offer; s.stats()
 *   startRecording(s, path, 'stereo'); await startFork(s, { url, format: 'twilio', bidirectional: true })   // taps.ts
 *   new Bridge(legA, legB); new Mixer(engine.scheduler).add(s)
 *   const out = new OutputArbiter(s); out.play(prompt); out.setAgent(playout)   // what the call hears
 *   await s.close(); await engine.stop()
 *
 * In worker threads (MEDIA_WORKERS): one MediaEngine per worker, inside a
 * whole media plane with the calls' agents (call/plane/worker-planes.ts);
 * calls on different workers meet over a FrameLink (frame-link.ts).
 *
 * With RTPENGINE_NG: `RtpengineAnchor` rewrites offers/answers through the
 * rtpengine daemon so media flows peer ↔ rtpengine ↔ our session.
 */
export type { AudioFrame, FrameSink, FrameSource, FrameEndpoint, DuplexFrameSink, SampleRate } from '../audio/frame.ts'
export { FRAME_MS, samplesPerFrame } from '../audio/frame.ts'
export { MediaEngine, type MediaEngineOptions, type MediaEngineStats, type MediaLogger } from './media-engine.ts'
export {
  MediaSession,
  type MediaSessionOptions,
  type MediaSessionStats,
  type MediaSessionEvents,
  type MuteDirection,
  type PlaybackResult,
  type SessionDtmfEvent,
  type SessionTimeoutEvent,
  type FlushEvent,
  type GarbageCounters,
} from './session/media-session.ts'
export { OutputArbiter } from './session/output-arbiter.ts'
export { SdpNegotiator, SdpError, type Direction, type CodecPreference, type NegotiatedMedia, type NegotiatedCodec } from './sdp/negotiator.ts'
export { PcmSource, PcmQueueSource, ToneSource, loadAudio, sourceFromSpec, type PlaySpec, type ToneName } from './playback.ts'
export { parseWav, parseWavHeader, encodeWav, type DecodedAudio, type WavFormat } from './wav.ts'
export { WavRecorder, type RecordingMode, type RecordingResult } from './recorder.ts'
export { WebSocketFork, type ForkOptions, type ForkFormat } from './fork.ts'
export { startRecording, stopRecording, startFork, stopFork } from './taps.ts'
export { Bridge, type BridgeMode, type BridgeLeg } from './bridge.ts'
export { Mixer } from './mixer.ts'
export { MediaScheduler, type SchedulerStats, type TickTask } from './scheduler.ts'
export { FrameLink, LinkedEndpoint, LinkSink, LinkSource, LINK_RATE } from './frame-link.ts'
export { RtpengineAnchor, RtpengineError, type AnchorOptions, type AnchorableSession, type CallIds } from './rtpengine/anchor.ts'
