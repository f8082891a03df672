import { randomUUID } from 'node:crypto'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Logger } from 'pino'
import type { MediaStore } from './plane/media-store.ts'
import { CallControlError } from './call-control.ts'
import type { AudioFrame, FrameEndpoint, FrameSink, SampleRate } from '../audio/frame.ts'
import { LINK_RATE, LinkedEndpoint, type FrameLink } from '../media/frame-link.ts'
import { Mixer } from '../media/mixer.ts'
import { WavRecorder } from '../media/recorder.ts'
import type { MediaScheduler, TickTask } from '../media/scheduler.ts'
import type { LiveMedia } from './live-media.ts'

/**
 * Conference rooms on this node: live calls mixed with media/Mixer (each
 * hears everyone but themselves), membership persisted on the call record
 * (`conference_id`, so the room's participantCount counts in-progress calls),
 * and an optional recording of the whole room. A room exists while it has
 * members here; the last one leaving completes the conference.
 *
 * While in a room a call hears the mix instead of its agent (the mix is a
 * foreground source on the call's OutputArbiter); the agent keeps listening.
 */
const MIX_RATE: SampleRate = 16000

/**
 * A room member: `mixed` is what the mixer adds (a local call's session
 * through its OutputArbiter (`output.endpoint`), or a call on another media worker through a
 * LinkedEndpoint, whose `link` it keeps), `heard` what the room recorder
 * listens to, `release` undoes what joining did to the call.
 */
interface Member { mixed: FrameEndpoint; heard: FrameEndpoint; release(): void; link?: FrameLink }

/** The room's full mix (everyone), summed per scheduler tick into a WAV. */
class RoomRecorder implements TickTask {
  private readonly frames = new Map<FrameEndpoint, { samples: Int16Array; tick: number }>()
  private readonly sinks = new Map<FrameEndpoint, FrameSink>()
  private readonly sum = new Int16Array(MIX_RATE / 50)
  private readonly acc = new Int32Array(MIX_RATE / 50)
  private readonly frame: AudioFrame = { samples: this.sum, sampleRate: MIX_RATE, rtpTimestamp: 0, receivedAt: 0 }
  readonly rec: WavRecorder

  constructor(readonly id: string, path: string, private readonly scheduler: MediaScheduler) {
    this.rec = new WavRecorder({ path, sampleRate: MIX_RATE, mode: 'inbound' })
    scheduler.add(this)
  }

  attach(session: FrameEndpoint): void {
    if (this.sinks.has(session)) return
    const slot = { samples: new Int16Array(MIX_RATE / 50), tick: -1 }
    this.frames.set(session, slot)
    const sink: FrameSink = { onFrame: (f) => { slot.samples.set(f.samples.subarray(0, slot.samples.length)); slot.tick = this.scheduler.currentTick } }
    this.sinks.set(session, sink)
    session.addSink(sink, { sampleRate: MIX_RATE })
  }

  detach(session: FrameEndpoint): void {
    const sink = this.sinks.get(session)
    if (!sink) return
    this.sinks.delete(session)
    this.frames.delete(session)
    if (!session.isClosed) session.removeSink(sink)
  }

  /** Sums the members' frames of this tick, so it runs in the scheduler's pass after every ingress. */
  egressAfterIngress(): boolean { return true }

  /** Egress runs after every session's ingress of the same tick: all frames of tick n are in. */
  egress(tick: number, now: number): void {
    this.acc.fill(0)
    for (const f of this.frames.values()) {
      if (f.tick !== tick) continue
      for (let i = 0; i < this.acc.length; i++) this.acc[i]! += f.samples[i]!
    }
    for (let i = 0; i < this.acc.length; i++) { const v = this.acc[i]!; this.sum[i] = v > 32767 ? 32767 : v < -32768 ? -32768 : v }
    this.frame.receivedAt = now
    this.rec.onFrame(this.frame)
  }

  close(): { durationMs: number; bytes: number } {
    this.scheduler.remove(this)
    for (const s of [...this.sinks.keys()]) this.detach(s)
    return this.rec.close()
  }
}

interface Room { id: string; accountId: string; mixer: Mixer; members: Map<string, Member>; recorder: RoomRecorder | null; autoRecordChecked: boolean }

export interface ConferenceRoomsOptions {
  store: MediaStore
  scheduler: MediaScheduler
  logger: Logger
  recordingsDir: string
}

export class ConferenceRooms {
  private readonly rooms = new Map<string, Room>()
  /** call id → conference id */
  private readonly where = new Map<string, string>()

  constructor(private readonly o: ConferenceRoomsOptions) {}

  has(conferenceId: string): boolean {
    return this.rooms.has(conferenceId)
  }

  roomOf(callId: string): string | undefined {
    return this.where.get(callId)
  }

  async join(live: LiveMedia, conferenceId: string, accountId: string, muted: boolean): Promise<{ participants: number }> {
    const callId = live.ctx.callId
    const current = this.where.get(callId)
    if (current === conferenceId) throw new CallControlError('invalid_state', `call ${callId} is already in conference ${conferenceId}`)
    if (current) await this.leave(callId, 'moved')
    const room = this.room(conferenceId, accountId)
    const session = live.session
    // A muted participant listens only: its voice is zeroed before the mixer sees it.
    const mutedByUs = muted && !session.muted.in
    if (mutedByUs) session.mute('in')
    const member: Member = {
      mixed: live.output.endpoint, heard: session,
      release: () => { if (mutedByUs && !session.isClosed) session.unmute('in') },
    }
    live.onEnd(() => this.leave(callId, 'hangup'))
    return this.admit(room, callId, member)
  }

  /**
   * A member whose call runs on another media worker: its audio arrives over
   * `link` (muting, if asked, happens on its own worker) and the mix for it
   * goes back the same way. The link closing (the call hung up, its worker
   * ended) is its hangup.
   */
  async joinLinked(callId: string, conferenceId: string, accountId: string, link: FrameLink): Promise<{ participants: number }> {
    const current = this.where.get(callId)
    if (current === conferenceId) throw new CallControlError('invalid_state', `call ${callId} is already in conference ${conferenceId}`)
    // A move between two rooms mixed here: the old link's close may not have arrived yet.
    if (current) await this.leave(callId, 'moved')
    if (MIX_RATE !== LINK_RATE) throw new Error('the conference mix rate and the frame link rate must match')
    const room = this.room(conferenceId, accountId)
    const endpoint = new LinkedEndpoint(link, this.o.scheduler)
    const member: Member = { mixed: endpoint, heard: endpoint, release: () => link.close(), link }
    // Only this membership ends with this link (the call may have moved on over a new one).
    link.onClose(() => { if (this.rooms.get(conferenceId)?.members.get(callId)?.link === link) void this.leave(callId, 'hangup') })
    return this.admit(room, callId, member)
  }

  private room(conferenceId: string, accountId: string): Room {
    let room = this.rooms.get(conferenceId)
    if (!room) {
      room = { id: conferenceId, accountId, mixer: new Mixer(this.o.scheduler, MIX_RATE), members: new Map(), recorder: null, autoRecordChecked: false }
      this.rooms.set(conferenceId, room)
    }
    return room
  }

  private async admit(room: Room, callId: string, member: Member): Promise<{ participants: number }> {
    room.mixer.add(member.mixed)
    room.recorder?.attach(member.heard)
    room.members.set(callId, member)
    this.where.set(callId, room.id)
    await this.o.store.calls.attach(callId, { conferenceId: room.id })
    await this.o.store.conferences.setStatus(room.id, 'in-progress')
    if (!room.autoRecordChecked) {
      room.autoRecordChecked = true
      // `record: true` on the conference: the mix is recorded from its first participant on, as record/start would.
      const conf = await this.o.store.conferences.get(room.accountId, room.id)
      if (conf?.record && !room.recorder && this.rooms.get(room.id) === room) {
        await this.record(room.id, room.accountId, true).catch((err: unknown) => this.o.logger.error({ err, conferenceId: room.id }, 'conference recording could not start'))
      }
    }
    return { participants: room.members.size }
  }

  /** Removes the call from its room (kick, move, hangup); the last one out completes the conference. */
  async leave(callId: string, why: 'kick' | 'moved' | 'hangup'): Promise<void> {
    const conferenceId = this.where.get(callId)
    if (!conferenceId) return
    this.where.delete(callId)
    const room = this.rooms.get(conferenceId)
    const m = room?.members.get(callId)
    if (!room || !m) return
    room.members.delete(callId)
    room.mixer.remove(m.mixed)
    room.recorder?.detach(m.heard)
    m.release()
    if (why !== 'hangup') await this.o.store.calls.attach(callId, { conferenceId: null })
    if (room.members.size === 0) {
      this.rooms.delete(conferenceId)
      room.mixer.close()
      await this.stopRecording(room)
      await this.o.store.conferences.setStatus(conferenceId, 'completed')
    }
  }

  async record(conferenceId: string, accountId: string, on: boolean): Promise<{ recordingId?: string }> {
    const room = this.rooms.get(conferenceId)
    if (!room || room.accountId !== accountId) throw new CallControlError('invalid_state', `conference ${conferenceId} has no live participants on this node`)
    if (!on) {
      const id = room.recorder?.id
      if (!id) throw new CallControlError('invalid_state', `conference ${conferenceId} is not being recorded`)
      await this.stopRecording(room)
      return { recordingId: id }
    }
    if (room.recorder) throw new CallControlError('invalid_state', `conference ${conferenceId} is already being recorded (recording ${room.recorder.id})`)
    mkdirSync(this.o.recordingsDir, { recursive: true })
    const path = join(this.o.recordingsDir, `${randomUUID()}.wav`)
    const row = await this.o.store.recordings.start({ accountId, conferenceId, format: 'wav', path })
    const rec = new RoomRecorder(row.id, path, this.o.scheduler)
    for (const m of room.members.values()) rec.attach(m.heard)
    room.recorder = rec
    return { recordingId: row.id }
  }

  private async stopRecording(room: Room): Promise<void> {
    const r = room.recorder
    if (!r) return
    room.recorder = null
    try {
      const res = r.close()
      await this.o.store.recordings.markReady(r.id, { durationMs: res.durationMs, sizeBytes: res.bytes })
    } catch (err) {
      this.o.logger.error({ err, conferenceId: room.id, recordingId: r.id }, 'conference recording could not be finalised')
      await this.o.store.recordings.markFailed(r.id).catch(() => {})
    }
  }
}
