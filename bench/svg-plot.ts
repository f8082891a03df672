import type { PlotSeries, PlotSpec } from './bench-result.ts'

/**
 * A small, dependency-free SVG plotter for the bench report: line charts
 * (capacity curves), histograms and CDFs (latency distributions), with axes,
 * tick labels, axis titles and a legend. Output is a self-contained <svg>
 * string (no fonts, scripts or external references).
 *
 * Data conventions (PlotSpec in bench-result.ts):
 *  - line:      x/y points per series, drawn in x order with markers.
 *  - histogram: x = left edge of each bin (equal or unequal widths; the last
 *               bin takes the previous width), y = count (or share). Several
 *               series are drawn as translucent overlapping bars.
 *  - cdf:       x = value, y = cumulative fraction 0..1 (or percent 0..100),
 *               drawn as a step line. Use cdfFromSamples() to build one.
 */

export interface PlotOptions {
  width?: number
  height?: number
  /** Log10 x axis (values ≤ 0 are dropped). */
  logX?: boolean
  /** Horizontal dashed reference lines, e.g. a target. */
  hLines?: { y: number; label: string }[]
  /** Vertical dashed reference lines, e.g. a p95 target on a latency histogram. */
  vLines?: { x: number; label: string }[]
}

export const PALETTE = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#4b5563', '#c026d3']

const FONT = 'font-family="system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif"'

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;')
}

/** "Nice" tick values covering [min, max] (Heckbert's algorithm). */
export function niceTicks(min: number, max: number, target = 6): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [0, 1]
  if (min === max) {
    const d = min === 0 ? 1 : Math.abs(min) * 0.1
    min -= d
    max += d
  }
  const range = niceNum(max - min, false)
  const step = niceNum(range / Math.max(1, target - 1), true)
  const lo = Math.floor(min / step) * step
  const hi = Math.ceil(max / step) * step
  const out: number[] = []
  for (let v = lo, i = 0; v <= hi + step * 0.5 && i < 100; v += step, i++) out.push(roundTo(v, step))
  return out
}

function niceNum(x: number, round: boolean): number {
  const exp = Math.floor(Math.log10(x))
  const f = x / 10 ** exp
  let nf: number
  if (round) nf = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10
  else nf = f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10
  return nf * 10 ** exp
}

function roundTo(v: number, step: number): number {
  const decimals = Math.max(0, -Math.floor(Math.log10(step)) + 1)
  return Number(v.toFixed(Math.min(10, decimals)))
}

/** Compact tick label: 1200 → "1.2k", 0.00025 → "2.5e-4". */
export function fmtTick(v: number): string {
  if (v === 0) return '0'
  const a = Math.abs(v)
  if (a >= 1e6) return `${trim(v / 1e6)}M`
  if (a >= 1e4) return `${trim(v / 1e3)}k`
  if (a < 1e-3) return v.toExponential(1)
  return trim(v)
}

function trim(v: number): string {
  return String(Number(v.toPrecision(4)))
}

/** Equal-width histogram of raw samples: x = left bin edges, y = counts. */
export function histogramFromSamples(label: string, samples: number[], bins = 30, range?: [number, number]): PlotSeries {
  const finite = samples.filter(Number.isFinite)
  if (finite.length === 0) return { label, x: [], y: [] }
  let lo = range?.[0] ?? Math.min(...finite)
  let hi = range?.[1] ?? Math.max(...finite)
  if (hi <= lo) hi = lo + 1
  const w = (hi - lo) / bins
  const y = new Array<number>(bins).fill(0)
  for (const s of finite) {
    const i = Math.min(bins - 1, Math.max(0, Math.floor((s - lo) / w)))
    y[i]!++
  }
  lo = Number(lo.toPrecision(12))
  return { label, x: y.map((_, i) => Number((lo + i * w).toPrecision(12))), y }
}

/** Empirical CDF of raw samples, down-sampled to at most `maxPoints`; y in 0..1. */
export function cdfFromSamples(label: string, samples: number[], maxPoints = 200): PlotSeries {
  const s = samples.filter(Number.isFinite).sort((a, b) => a - b)
  if (s.length === 0) return { label, x: [], y: [] }
  const step = Math.max(1, Math.floor(s.length / maxPoints))
  const x: number[] = []
  const y: number[] = []
  for (let i = 0; i < s.length; i += step) {
    x.push(s[i]!)
    y.push((i + 1) / s.length)
  }
  if (x[x.length - 1] !== s[s.length - 1] || y[y.length - 1] !== 1) {
    x.push(s[s.length - 1]!)
    y.push(1)
  }
  return { label, x, y }
}

interface Frame {
  w: number
  h: number
  left: number
  right: number
  top: number
  bottom: number
}

/** Renders one PlotSpec as a standalone SVG string. */
export function renderPlot(spec: PlotSpec, options: PlotOptions = {}): string {
  const opts: PlotOptions = {
    ...options,
    logX: options.logX ?? spec.logX,
    hLines: options.hLines ?? spec.marks?.filter((m) => m.axis === 'y').map((m) => ({ y: m.value, label: m.label })),
    vLines: options.vLines ?? spec.marks?.filter((m) => m.axis === 'x').map((m) => ({ x: m.value, label: m.label })),
  }
  const W = opts.width ?? 640
  const H = opts.height ?? 360
  const legendCols = spec.series.length === 2 || spec.series.length === 4 || W < 600 ? 2 : 3
  const legendRows = spec.series.length > 1 ? Math.ceil(spec.series.length / legendCols) : 0
  const f: Frame = { w: W, h: H, left: 64, right: 16, top: 36 + legendRows * 16, bottom: 48 }
  const pw = W - f.left - f.right
  const ph = H - f.top - f.bottom

  const series = spec.series.map((s) => clean(s, opts.logX === true))
  const allX = series.flatMap((s) => s.x)
  const allY = series.flatMap((s) => s.y)

  const parts: string[] = []
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${escapeXml(spec.title)}" class="plot plot-${spec.kind}" data-plot-id="${escapeXml(spec.id)}">`)
  parts.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#fff"/>`)
  // shrink a long title to fit (≈ 0.55 em per character)
  const titleSize = Math.max(9, Math.min(14, (W - 16) / (0.55 * Math.max(1, spec.title.length))))
  parts.push(`<text x="${W / 2}" y="18" text-anchor="middle" font-size="${titleSize.toFixed(1)}" font-weight="600" ${FONT} fill="#111">${escapeXml(spec.title)}</text>`)

  if (allX.length === 0) {
    parts.push(`<text x="${W / 2}" y="${H / 2}" text-anchor="middle" font-size="13" ${FONT} fill="#888">no data</text></svg>`)
    return parts.join('')
  }

  // X domain
  let xMin = Math.min(...allX)
  let xMax = Math.max(...allX)
  if (spec.kind === 'histogram') {
    for (const s of series) {
      const n = s.x.length
      if (n > 0) xMax = Math.max(xMax, s.x[n - 1]! + binWidth(s.x, n - 1))
    }
  }
  // Y domain: start at 0 for counts, fractions and most capacity curves.
  let yMin = Math.min(0, ...allY, ...(opts.hLines ?? []).map((l) => l.y))
  let yMax = Math.max(...allY, ...(opts.hLines ?? []).map((l) => l.y))
  if (spec.kind === 'cdf') {
    yMin = 0
    yMax = yMax > 1.0001 ? 100 : 1
  }
  for (const v of opts.vLines ?? []) {
    xMin = Math.min(xMin, v.x)
    xMax = Math.max(xMax, v.x)
  }

  let xTicks: number[]
  let xs: (v: number) => number
  if (opts.logX) {
    const lo = Math.floor(Math.log10(xMin))
    const hi = Math.ceil(Math.log10(xMax === xMin ? xMin * 10 : xMax))
    xTicks = []
    for (let e = lo; e <= hi; e++) xTicks.push(10 ** e)
    xs = (v) => f.left + ((Math.log10(v) - lo) / Math.max(1e-9, hi - lo)) * pw
  } else {
    xTicks = spec.kind === 'line' && xMin >= 0 ? niceTicks(0, xMax) : niceTicks(xMin, xMax)
    const a = xTicks[0]!
    const b = xTicks[xTicks.length - 1]!
    xs = (v) => f.left + ((v - a) / (b - a || 1)) * pw
  }
  const yTicks = niceTicks(yMin, yMax === yMin ? yMin + 1 : yMax, 6)
  const ya = yTicks[0]!
  const yb = yTicks[yTicks.length - 1]!
  const ys = (v: number) => f.top + ph - ((v - ya) / (yb - ya || 1)) * ph

  // Grid and axes
  parts.push(`<g stroke="#e5e7eb" stroke-width="1">`)
  for (const t of yTicks) parts.push(`<line x1="${f.left}" x2="${f.left + pw}" y1="${r(ys(t))}" y2="${r(ys(t))}"/>`)
  for (const t of xTicks) parts.push(`<line x1="${r(xs(t))}" x2="${r(xs(t))}" y1="${f.top}" y2="${f.top + ph}"/>`)
  parts.push(`</g>`)
  parts.push(`<g stroke="#374151" stroke-width="1"><line x1="${f.left}" x2="${f.left + pw}" y1="${f.top + ph}" y2="${f.top + ph}"/><line x1="${f.left}" x2="${f.left}" y1="${f.top}" y2="${f.top + ph}"/></g>`)
  parts.push(`<g font-size="11" ${FONT} fill="#374151">`)
  for (const t of yTicks) parts.push(`<text x="${f.left - 6}" y="${r(ys(t)) + 4}" text-anchor="end">${escapeXml(fmtTick(t))}</text>`)
  for (const t of xTicks) parts.push(`<text x="${r(xs(t))}" y="${f.top + ph + 16}" text-anchor="middle">${escapeXml(fmtTick(t))}</text>`)
  parts.push(`</g>`)
  parts.push(`<text x="${f.left + pw / 2}" y="${H - 10}" text-anchor="middle" font-size="12" ${FONT} fill="#111">${escapeXml(spec.xLabel)}</text>`)
  parts.push(`<text transform="translate(14 ${f.top + ph / 2}) rotate(-90)" text-anchor="middle" font-size="12" ${FONT} fill="#111">${escapeXml(spec.yLabel)}</text>`)

  // Data
  parts.push(`<g class="data">`)
  series.forEach((s, si) => {
    const color = PALETTE[si % PALETTE.length]!
    if (spec.kind === 'histogram') {
      const opacity = series.length > 1 ? 0.45 : 0.75
      for (let i = 0; i < s.x.length; i++) {
        const x0 = xs(s.x[i]!)
        const x1 = xs(s.x[i]! + binWidth(s.x, i))
        const y0 = ys(Math.max(ya, 0))
        const y1 = ys(s.y[i]!)
        parts.push(`<rect class="bar" x="${r(x0)}" y="${r(Math.min(y0, y1))}" width="${r(Math.max(0.5, x1 - x0 - 0.5))}" height="${r(Math.abs(y0 - y1))}" fill="${color}" fill-opacity="${opacity}"><title>${escapeXml(`${s.label}: [${fmtTick(s.x[i]!)}, ${fmtTick(s.x[i]! + binWidth(s.x, i))}) → ${fmtTick(s.y[i]!)}`)}</title></rect>`)
      }
    } else if (spec.kind === 'cdf') {
      let d = ''
      for (let i = 0; i < s.x.length; i++) {
        const px = r(xs(s.x[i]!))
        const py = r(ys(s.y[i]!))
        if (i === 0) d += `M${px},${r(ys(0))} L${px},${py}`
        else d += ` L${px},${r(ys(s.y[i - 1]!))} L${px},${py}`
      }
      parts.push(`<path class="line" d="${d}" fill="none" stroke="${color}" stroke-width="2"/>`)
    } else {
      const order = s.x.map((_, i) => i).sort((a, b) => s.x[a]! - s.x[b]!)
      const d = order.map((i, k) => `${k === 0 ? 'M' : 'L'}${r(xs(s.x[i]!))},${r(ys(s.y[i]!))}`).join(' ')
      parts.push(`<path class="line" d="${d}" fill="none" stroke="${color}" stroke-width="2"/>`)
      for (const i of order) {
        parts.push(`<circle cx="${r(xs(s.x[i]!))}" cy="${r(ys(s.y[i]!))}" r="3" fill="${color}"><title>${escapeXml(`${s.label}: (${fmtTick(s.x[i]!)}, ${fmtTick(s.y[i]!)})`)}</title></circle>`)
      }
    }
  })
  parts.push(`</g>`)

  // Reference lines
  for (const l of opts.hLines ?? []) {
    const y = r(ys(l.y))
    parts.push(`<line x1="${f.left}" x2="${f.left + pw}" y1="${y}" y2="${y}" stroke="#111" stroke-dasharray="5 4" stroke-width="1"/><text x="${f.left + pw - 4}" y="${y - 4}" text-anchor="end" font-size="11" ${FONT} fill="#111">${escapeXml(l.label)}</text>`)
  }
  for (const l of opts.vLines ?? []) {
    const x = r(xs(l.x))
    parts.push(`<line x1="${x}" x2="${x}" y1="${f.top}" y2="${f.top + ph}" stroke="#111" stroke-dasharray="5 4" stroke-width="1"/><text x="${x + 4}" y="${f.top + 12}" font-size="11" ${FONT} fill="#111">${escapeXml(l.label)}</text>`)
  }

  // Legend
  if (legendRows > 0) {
    const cols = legendCols
    const colW = (W - f.left - f.right) / cols
    const maxChars = Math.max(8, Math.floor((colW - 24) / 6.3))
    series.forEach((s, si) => {
      const col = si % cols
      const row = Math.floor(si / cols)
      const x = f.left + col * colW
      const y = 38 + row * 16
      const color = PALETTE[si % PALETTE.length]!
      parts.push(`<g class="legend-item"><rect x="${r(x)}" y="${y - 9}" width="14" height="10" fill="${color}"/><text x="${r(x + 19)}" y="${y}" font-size="11" ${FONT} fill="#111">${escapeXml(truncate(s.label, maxChars))}</text></g>`)
    })
  }
  parts.push(`</svg>`)
  return parts.join('')
}

function clean(s: PlotSeries, logX: boolean): PlotSeries {
  const x: number[] = []
  const y: number[] = []
  const n = Math.min(s.x.length, s.y.length)
  for (let i = 0; i < n; i++) {
    const a = s.x[i]!
    const b = s.y[i]!
    if (!Number.isFinite(a) || !Number.isFinite(b)) continue
    if (logX && a <= 0) continue
    x.push(a)
    y.push(b)
  }
  return { label: s.label, x, y }
}

function binWidth(x: number[], i: number): number {
  if (x.length < 2) return 1
  if (i < x.length - 1) return x[i + 1]! - x[i]!
  return x[i]! - x[i - 1]!
}

function r(v: number): number {
  return Math.round(v * 10) / 10
}

function truncate(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s
}
