/**
 * ITU-T G.722 sub-band ADPCM at 64 kbit/s (mode 1), written from the
 * Recommendation's block diagram (§3 encoder, §4 decoder, §6 block
 * descriptions). Block names in comments (SUBTRA, QUANTL, INVQAL, LOGSCL,
 * SCALEL, RECONS, PARREC, UPPOL1/2, UPZERO, DELAYA, FILTEP, FILTEZ, PREDIC)
 * match the ITU text so the code can be checked against it.
 *
 * 16 kHz PCM in, one byte per input sample pair out: 320 samples (20 ms) →
 * 160 bytes. RFC 3551 §4.5.2: the RTP clock is 8000 even though audio is
 * sampled at 16 kHz.
 *
 * State lives in typed arrays allocated once per codec instance; encode and
 * decode allocate nothing.
 */

// §6.2.1.2 QUANTL decision levels (upper half; index 0 unused), low band 6-bit.
const Q6 = Int32Array.from([
  0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714,
  786, 858, 940, 1023, 1121, 1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919, 0, 0,
])
// QUANTL output codes for negative / positive error by interval.
const ILN = Int32Array.from([
  0, 63, 62, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19,
  18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 0,
])
const ILP = Int32Array.from([
  0, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47,
  46, 45, 44, 43, 42, 41, 40, 39, 38, 37, 36, 35, 34, 33, 32, 0,
])
// §6.2.1.3 LOGSCL log-scale factor multipliers, and the 4-bit → magnitude index map.
const WL = Int32Array.from([-60, -30, 58, 172, 334, 538, 1198, 3042])
const RL42 = Int32Array.from([0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0])
// §6.2.1.4 SCALEL/SCALEH inverse-log table.
const ILB = Int32Array.from([
  2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834,
  2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
])
// INVQAL 4-bit (used for the predictor feedback) and INVQBL 6-bit output levels.
const QM4 = Int32Array.from([
  0, -20456, -12896, -8968, -6288, -4240, -2584, -1200,
  20456, 12896, 8968, 6288, 4240, 2584, 1200, 0,
])
const QM6 = Int32Array.from([
  -136, -136, -136, -136, -24808, -21904, -19008, -16704,
  -14984, -13512, -12280, -11192, -10232, -9360, -8576, -7856,
  -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576,
  -3168, -2776, -2400, -2032, -1688, -1360, -1040, -728,
  24808, 21904, 19008, 16704, 14984, 13512, 12280, 11192,
  10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456,
  4944, 4464, 4008, 3576, 3168, 2776, 2400, 2032,
  1688, 1360, 1040, 728, 432, 136, -432, -136,
])
// High band (2-bit) tables: §6.2.2.
const QM2 = Int32Array.from([-7408, -1616, 7408, 1616])
const WH = Int32Array.from([0, -214, 798])
const RH2 = Int32Array.from([2, 1, 2, 1])
const IHN = Int32Array.from([0, 1, 0])
const IHP = Int32Array.from([0, 3, 2])
// §3.2 / §4.4 QMF coefficients (24 taps, symmetric; half listed).
const QMF = Int32Array.from([3, -11, 12, 32, -210, 951, 3876, -805, 362, -156, 53, -11])

function sat16(v: number): number {
  return v > 32767 ? 32767 : v < -32768 ? -32768 : v
}

/** Adaptive predictor state of one sub-band (§6.2.1.5–6.2.1.8). */
class SubBand {
  s = 0 // predicted signal
  sp = 0 // pole-section prediction
  sz = 0 // zero-section prediction
  nb = 0 // log scale factor
  det: number // scale factor
  readonly r = new Int32Array(3) // reconstructed signal history
  readonly a = new Int32Array(3) // pole coefficients
  readonly ap = new Int32Array(3)
  readonly p = new Int32Array(3) // partial reconstructed signal history
  readonly d = new Int32Array(7) // quantized difference history
  readonly b = new Int32Array(7) // zero coefficients
  readonly bp = new Int32Array(7)
  readonly sg = new Int32Array(7)

  constructor(det: number) { this.det = det }

  /** Blocks 4L/4H: update the predictor with the quantized difference `dq`. */
  adapt(dq: number): void {
    const { r, a, ap, p, d, b, bp, sg } = this
    // RECONS, PARREC
    d[0] = dq
    r[0] = sat16(this.s + dq)
    p[0] = sat16(this.sz + dq)
    // UPPOL2: second pole coefficient
    for (let i = 0; i < 3; i++) sg[i] = p[i]! >> 15
    let wd1 = sat16(a[1]! << 2)
    let wd2 = sg[0] === sg[1] ? -wd1 : wd1
    if (wd2 > 32767) wd2 = 32767
    let wd3 = (wd2 >> 7) + (sg[0] === sg[2] ? 128 : -128)
    wd3 += (a[2]! * 32512) >> 15
    ap[2] = wd3 > 12288 ? 12288 : wd3 < -12288 ? -12288 : wd3
    // UPPOL1: first pole coefficient, limited by the stability constraint
    sg[0] = p[0]! >> 15
    sg[1] = p[1]! >> 15
    wd1 = sg[0] === sg[1] ? 192 : -192
    wd2 = (a[1]! * 32640) >> 15
    ap[1] = sat16(wd1 + wd2)
    wd3 = sat16(15360 - ap[2]!)
    if (ap[1]! > wd3) ap[1] = wd3
    else if (ap[1]! < -wd3) ap[1] = -wd3
    // UPZERO: sixth-order zero section, sign-sign LMS
    wd1 = dq === 0 ? 0 : 128
    sg[0] = dq >> 15
    for (let i = 1; i < 7; i++) {
      sg[i] = d[i]! >> 15
      wd2 = sg[i] === sg[0] ? wd1 : -wd1
      wd3 = (b[i]! * 32640) >> 15
      bp[i] = sat16(wd2 + wd3)
    }
    // DELAYA
    for (let i = 6; i > 0; i--) { d[i] = d[i - 1]!; b[i] = bp[i]! }
    for (let i = 2; i > 0; i--) { r[i] = r[i - 1]!; p[i] = p[i - 1]!; a[i] = ap[i]! }
    // FILTEP
    wd1 = (a[1]! * sat16(r[1]! + r[1]!)) >> 15
    wd2 = (a[2]! * sat16(r[2]! + r[2]!)) >> 15
    this.sp = sat16(wd1 + wd2)
    // FILTEZ
    let sz = 0
    for (let i = 6; i > 0; i--) sz += (b[i]! * sat16(d[i]! + d[i]!)) >> 15
    this.sz = sat16(sz)
    // PREDIC
    this.s = sat16(this.sp + this.sz)
  }

  /** LOGSCL/SCALEL (low band) or LOGSCH/SCALEH (high band). */
  scale(wlInc: number, nbMax: number, shiftBase: number): void {
    let nb = ((this.nb * 127) >> 7) + wlInc
    nb = nb < 0 ? 0 : nb > nbMax ? nbMax : nb
    this.nb = nb
    const idx = (nb >> 6) & 31
    const sh = shiftBase - (nb >> 11)
    const v = sh < 0 ? ILB[idx]! << -sh : ILB[idx]! >> sh
    this.det = v << 2
  }
}

export class G722Encoder {
  private readonly low = new SubBand(32)
  private readonly high = new SubBand(8)
  private readonly x = new Int32Array(48) // transmit QMF delay line (doubled ring)
  private pos = 0

  /** Encodes `count` (even) 16 kHz samples into count/2 bytes. */
  encode(pcm: Int16Array, out: Uint8Array, count = pcm.length): number {
    const x = this.x
    const low = this.low
    const high = this.high
    let n = 0
    for (let j = 0; j + 1 < count; j += 2) {
      // Transmit QMF (§3.2): split into two 8 kHz sub-bands.
      // Delay line as a doubled ring: each sample is written at p and p+24 so
      // the 24-tap window is always contiguous at [p+2, p+26) with no shifting.
      let p = this.pos
      x[p] = x[p + 24] = pcm[j]!
      x[p + 1] = x[p + 25] = pcm[j + 1]!
      p = (p + 2) % 24
      this.pos = p
      let sumOdd = 0
      let sumEven = 0
      for (let i = 0; i < 12; i++) {
        sumOdd += x[p + 2 * i]! * QMF[i]!
        sumEven += x[p + 2 * i + 1]! * QMF[11 - i]!
      }
      const xl = (sumEven + sumOdd) >> 13
      const xh = (sumEven - sumOdd) >> 13

      // Low band: SUBTRA, QUANTL (6 bit)
      const el = sat16(xl - low.s)
      let wd = el >= 0 ? el : -(el + 1)
      let i = 1
      for (; i < 30; i++) {
        if (wd < ((Q6[i]! * low.det) >> 12)) break
      }
      const il = el < 0 ? ILN[i]! : ILP[i]!
      // INVQAL on the 4 most significant bits, then LOGSCL/SCALEL
      const ril = il >> 2
      const dlow = (low.det * QM4[ril]!) >> 15
      low.scale(WL[RL42[ril]!]!, 18432, 8)
      low.adapt(dlow)

      // High band: SUBTRA, QUANTH (2 bit)
      const eh = sat16(xh - high.s)
      wd = eh >= 0 ? eh : -(eh + 1)
      const mih = wd >= ((564 * high.det) >> 12) ? 2 : 1
      const ih = eh < 0 ? IHN[mih]! : IHP[mih]!
      const dhigh = (high.det * QM2[ih]!) >> 15
      high.scale(WH[RH2[ih]!]!, 22528, 10)
      high.adapt(dhigh)

      out[n++] = (ih << 6) | il
    }
    return n
  }
}

export class G722Decoder {
  private readonly low = new SubBand(32)
  private readonly high = new SubBand(8)
  private readonly x = new Int32Array(48) // receive QMF delay line (doubled ring)
  private pos = 0

  /** Decodes `count` bytes into 2*count 16 kHz samples. */
  decode(data: Uint8Array, out: Int16Array, count = data.length): number {
    const x = this.x
    const low = this.low
    const high = this.high
    let n = 0
    for (let j = 0; j < count; j++) {
      const code = data[j]!
      const il6 = code & 0x3f
      const ih = (code >> 6) & 0x03
      // INVQBL (6-bit) for output, RECONS, LIMIT
      let rlow = low.s + ((low.det * QM6[il6]!) >> 15)
      rlow = rlow > 16383 ? 16383 : rlow < -16384 ? -16384 : rlow
      // INVQAL (4-bit) feeds the predictor, as in the encoder
      const ril = il6 >> 2
      const dlow = (low.det * QM4[ril]!) >> 15
      low.scale(WL[RL42[ril]!]!, 18432, 8)
      low.adapt(dlow)

      const dhigh = (high.det * QM2[ih]!) >> 15
      let rhigh = dhigh + high.s
      rhigh = rhigh > 16383 ? 16383 : rhigh < -16384 ? -16384 : rhigh
      high.scale(WH[RH2[ih]!]!, 22528, 10)
      high.adapt(dhigh)

      // Receive QMF (§4.4): recombine to 16 kHz
      let p = this.pos
      x[p] = x[p + 24] = rlow + rhigh
      x[p + 1] = x[p + 25] = rlow - rhigh
      p = (p + 2) % 24
      this.pos = p
      let xout1 = 0
      let xout2 = 0
      for (let i = 0; i < 12; i++) {
        xout2 += x[p + 2 * i]! * QMF[i]!
        xout1 += x[p + 2 * i + 1]! * QMF[11 - i]!
      }
      out[n++] = sat16(xout1 >> 12)
      out[n++] = sat16(xout2 >> 12)
    }
    return n
  }
}
