/**
 * The answering-machine phase of an outbound call (README "Answering-machine
 * detection"): the first inbound audio goes to the detector, not to the
 * conversation. A person (or no verdict in time) starts the conversation; a
 * machine is hung up on, talked over (`continue`), or left a message once
 * its greeting ends (the beep, or silence: `MessageCue`).
 */
import type { EventEmitter } from 'node:events'
import { performance } from 'node:perf_hooks'
import type { AudioFrame } from '../audio/frame.ts'
import type { AgentEvents, AgentLogger } from './agent-events.ts'
import { AnsweringMachineDetector, MessageCue, type AmdResult } from './amd.ts'
import type { AmdPolicy } from './config.ts'
import type { Transcript } from './transcript.ts'

/** What the runtime does next: `converse` (the greeting starts), `hangup`, or leave `text` (variables not yet filled). */
export type AmdStep = { kind: 'converse' } | { kind: 'hangup' } | { kind: 'leave_message'; text: string }

export interface AmdPhaseOptions {
  policy: AmdPolicy
  /** The message when the policy names none: the outbound greeting, else the greeting. */
  defaultMessage: string
  transcript: Transcript
  events: EventEmitter<AgentEvents>
  log: AgentLogger
  callId: string
}

export class AmdPhase {
  private readonly o: AmdPhaseOptions
  private phase: { kind: 'detect'; detector: AnsweringMachineDetector } | { kind: 'wait'; cue: MessageCue } | { kind: 'message' } | { kind: 'over' }
  /** The verdict, once there is one (it goes into the call result). */
  result: AmdResult | undefined

  constructor(o: AmdPhaseOptions) {
    this.o = o
    this.phase = { kind: 'detect', detector: new AnsweringMachineDetector(o.policy.detector) }
  }

  /** Inbound frames still belong to the AMD phase (the whole call, once a message is being left). */
  get active(): boolean {
    return this.phase.kind !== 'over'
  }

  process(frame: AudioFrame): AmdStep | undefined {
    const { policy } = this.o
    const phase = this.phase
    if (phase.kind === 'detect') {
      const r = phase.detector.process(frame)
      if (!r) return undefined
      this.result = r
      const now = performance.now()
      this.o.transcript.add({ role: 'system', text: `AMD: ${r.verdict} (${r.cause}) after ${r.decidedAfterMs} ms`, start: now - r.decidedAfterMs, end: now, interrupted: false, source: 'amd' })
      this.o.log.info({ callId: this.o.callId, ...r }, 'answering machine detection')
      this.o.events.emit('amd', r)
      if (r.verdict !== 'machine' || policy.onMachine === 'continue') {
        // A person (or no verdict in time): the conversation starts now; their "Hello?" was the cue.
        this.phase = { kind: 'over' }
        return { kind: 'converse' }
      }
      if (policy.onMachine === 'hangup') {
        this.phase = { kind: 'over' }
        return { kind: 'hangup' }
      }
      this.phase = { kind: 'wait', cue: new MessageCue(frame.sampleRate, { ...(policy.endOfGreetingSilenceMs !== undefined ? { silenceMs: policy.endOfGreetingSilenceMs } : {}), ...(policy.maxWaitMs !== undefined ? { maxWaitMs: policy.maxWaitMs } : {}) }) }
      return undefined
    }
    if (phase.kind === 'wait') {
      const cue = phase.cue.process(frame)
      if (!cue) return undefined
      this.phase = { kind: 'message' }
      const now = performance.now()
      this.o.transcript.add({ role: 'system', text: `AMD: message cue ${cue}`, start: now, end: now, interrupted: false, source: 'amd' })
      this.o.log.info({ callId: this.o.callId, cue }, 'leaving voicemail message')
      return { kind: 'leave_message', text: policy.message ?? this.o.defaultMessage }
    }
    // phase 'message': the machine is recording; nothing it plays is a turn.
    return undefined
  }
}
