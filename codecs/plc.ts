/**
 * Packet loss concealment for waveform codecs (G.711, G.722, L16), after
 * ITU-T G.711 Appendix I: a lost frame is replaced by repeating the last pitch
 * period of the decoded signal, which keeps voiced speech going without the
 * buzz or clicks of repeating a whole 20 ms frame at a phase that does not
 * line up. Per Appendix I §I.2:
 *  - the pitch period is searched over 5–15 ms (40–120 samples at 8 kHz) by
 *    normalised cross-correlation of the most recent 20 ms with the signal one
 *    period earlier;
 *  - the synthetic signal keeps full level for the first 10 ms of an erasure,
 *    then fades 20 % per 10 ms and is silent after 60 ms.
 * Differences from the appendix: no 3.75 ms output delay, so the
 * quarter-period overlap-add at the start of an erasure is left out (the
 * period found is the one that continues the signal best, so the junction is
 * already close); one pitch period is repeated for the whole erasure rather
 * than widening to two and three periods after 10 and 20 ms; and the first
 * good frame after an erasure is NOT cross-faded with the synthetic signal
 * (§I.2.7): every packet the network delivered is played bit-exact (a design
 * rule of this engine, asserted by test/media/sipp-pcap.test.ts), and an
 * "erasure" is often a late packet that then plays.
 *
 * Cost on the hot path is one shift of the ~49 ms history per good frame; the
 * pitch search (≈ 13k multiply-adds at 8 kHz) runs once per erasure.
 */

export class PitchConcealer {
  private readonly frame: number
  private readonly hist: Int16Array
  private readonly minPitch: number
  private readonly maxPitch: number
  private readonly corrLen: number
  private readonly samplesPer10ms: number
  /** Concealed frames in a row (0 = last frame was good). */
  private erased = 0
  private pitch = 0
  /** Position inside the repeated period, continued across frames of one erasure. */
  private phase = 0
  /** Samples synthesised since the erasure began (drives the fade). */
  private synthesised = 0
  private primed = false
  /** The pitch period copied out of the history when an erasure starts. */
  private readonly period: Int16Array

  constructor(sampleRate: number, frameSamples: number) {
    const scale = sampleRate / 8000
    this.frame = frameSamples
    this.minPitch = Math.round(40 * scale)
    this.maxPitch = Math.round(120 * scale)
    this.corrLen = Math.round(160 * scale) // 20 ms
    this.samplesPer10ms = Math.round(80 * scale)
    // 48.75 ms at 8 kHz (Appendix I's history length): enough for the
    // correlation window plus the longest period, and at least one frame.
    this.hist = new Int16Array(Math.max(Math.round(390 * scale), this.corrLen + this.maxPitch, frameSamples))
    this.period = new Int16Array(this.maxPitch)
  }

  /** A good frame was decoded into pcm[0..n) (read only: delivered audio stays bit-exact). */
  remember(pcm: Int16Array, n: number): void {
    this.erased = 0
    this.push(pcm, n)
    this.primed = true
  }

  /** Writes one concealed frame into out; returns its length. */
  conceal(out: Int16Array): number {
    const n = this.frame
    if (!this.primed) { out.fill(0, 0, n); return n }
    if (this.erased === 0) {
      this.pitch = this.findPitch()
      this.phase = 0
      this.synthesised = 0
    }
    this.erased++
    for (let i = 0; i < n; i++) out[i] = this.synthSample()
    this.push(out, n)
    return n
  }

  /** Next sample of the faded periodic extension. */
  private synthSample(): number {
    const p = this.pitch
    if (p === 0) return 0
    const v = this.period[this.phase]!
    this.phase = this.phase + 1 === p ? 0 : this.phase + 1
    const t = this.synthesised++
    const full = this.samplesPer10ms
    if (t < full) return v
    // −20 % per 10 ms after the first 10 ms; silent from 60 ms.
    const gain = 1 - (0.2 * (t - full)) / full
    return gain > 0 ? Math.round(v * gain) : 0
  }

  private findPitch(): number {
    const h = this.hist
    const end = h.length
    const start = end - this.corrLen
    let best = 0
    let bestScore = -Infinity
    for (let p = this.minPitch; p <= this.maxPitch; p++) {
      let xy = 0
      let yy = 0
      for (let i = start; i < end; i++) {
        const y = h[i - p]!
        xy += h[i]! * y
        yy += y * y
      }
      // Normalised by the energy of the lagged segment (Appendix I's criterion).
      const score = yy > 0 ? xy / Math.sqrt(yy) : 0
      if (score > bestScore) { bestScore = score; best = p }
    }
    // Silence in the history: repeat silence (the fade makes no difference).
    const p = best || this.minPitch
    this.period.set(h.subarray(end - p, end))
    return p
  }

  private push(pcm: Int16Array, n: number): void {
    const h = this.hist
    const len = h.length
    // Index loops, not subarray(): no view object per frame on the packet path.
    if (n >= len) { for (let i = 0; i < len; i++) h[i] = pcm[n - len + i]!; return }
    h.copyWithin(0, n)
    for (let i = 0, o = len - n; i < n; i++, o++) h[o] = pcm[i]!
  }
}
