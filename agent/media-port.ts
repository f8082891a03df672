/**
 * What the agent needs from a call's media, and nothing more. The SIP app
 * implements this over a MediaSession (or a worker-thread proxy of one); tests
 * implement it with a real-time loop. The agent never sees RTP, codecs or SIP.
 */
import type { AudioFrame, FrameSource, SampleRate } from '../audio/frame.ts'

export type Unsubscribe = () => void

export interface AgentMediaPort {
  /** Rate of inbound frames; the agent's outbound source produces frames at this rate too. */
  readonly sampleRate: SampleRate
  /** Decoded inbound caller audio, one 20 ms frame per packet. */
  onFrame(listener: (frame: AudioFrame) => void): Unsubscribe
  /** Inbound DTMF digits (RFC 4733 or SIP INFO, already de-duplicated). */
  onDtmf(listener: (digit: string) => void): Unsubscribe
  /** The call ended from the outside (remote BYE, API hangup, media timeout). */
  onEnded(listener: (reason: string) => void): Unsubscribe
  /** Attach the agent's outbound audio; the session pulls one frame per tick. */
  play(source: FrameSource): void
  /** Drop any outbound audio the session has already taken but not yet sent (barge-in). */
  flush(): void
  sendDtmf(digits: string): Promise<void>
  hangup(reason: string): Promise<void>
  /**
   * Transfer the caller (SIP REFER or a new bridged leg: the app decides).
   * With a whisper the target hears it before the caller is connected, so
   * the app bridges rather than REFERs.
   */
  transfer(target: string, opts?: { whisper?: string }): Promise<void>
}
