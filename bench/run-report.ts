import { meets, ratioToReference, type BenchFigure, type BenchResult, type PlotSeries, type PlotSpec } from './bench-result.ts'

/** What `npm run bench` writes to bench/results/<timestamp>.json. */
export interface RunReport {
  kind: 'callplane-bench-run'
  schema: 1
  mode: 'quick' | 'full'
  startedAt: string
  finishedAt: string
  durationSec: number
  machine: MachineInfo
  git: { commit: string | null; branch: string | null; dirty: boolean | null }
  benches: BenchRunEntry[]
  /** Every figure of every bench, with its target verdict and its reference ratio. */
  summary: SummaryRow[]
  /** Plots merged across benches by PlotSpec.compareKey (Callplane next to its reference). */
  comparisons?: PlotSpec[]
  notes: string[]
}

export interface MachineInfo {
  hostname: string
  cpuModel: string
  cores: number
  memoryGiB: number
  kernel: string
  os: string
  node: string
  npm: string | null
  /** Versions of the external engines and load tools (null when absent). */
  tools: Record<string, string | null>
  loadAvgAtStart: number[]
}

export type BenchStatus = 'ok' | 'failed' | 'timeout' | 'no-result' | 'missing' | 'skipped'

export interface BenchRunEntry {
  name: string
  /** Path relative to the repo, absent for a missing bench. */
  script?: string
  status: BenchStatus
  /** What this bench is for (from the issue it belongs to). */
  about?: string
  exitCode?: number | null
  signal?: string | null
  durationSec: number
  timeoutSec?: number
  /** Why it failed, was missing or skipped. */
  error?: string
  /** Last lines of its output, kept for failed runs. */
  logTail?: string
  result?: BenchResult
}

export interface SummaryRow {
  bench: string
  id: string
  label: string
  value: number
  unit: string
  better: 'higher' | 'lower'
  target?: number
  /** undefined when the figure has no target. */
  met?: boolean
  reference?: { engine: string; value: number; fromBench?: string }
  /** > 1 means Callplane does better than the reference. */
  ratio?: number
  /** This row is itself a reference engine's figure. */
  engine?: string
}

/**
 * Flattens every bench's figures into summary rows, attaching cross-bench
 * references: a figure with `engine` + `referenceFor` is the reference for
 * figures (in other benches) with those ids that do not carry one already.
 */
export function buildSummary(benches: BenchRunEntry[]): SummaryRow[] {
  const refs = new Map<string, { engine: string; value: number; fromBench: string }>()
  for (const b of benches) {
    for (const f of b.result?.figures ?? []) {
      if (f.engine && f.referenceFor) for (const id of f.referenceFor) if (!refs.has(id)) refs.set(id, { engine: f.engine, value: f.value, fromBench: b.name })
    }
  }
  const rows: SummaryRow[] = []
  for (const b of benches) {
    for (const f of b.result?.figures ?? []) {
      const reference = f.reference ?? (f.engine ? undefined : refs.get(f.id))
      const withRef: BenchFigure = { ...f, reference: reference ? { engine: reference.engine, value: reference.value } : undefined }
      rows.push({
        bench: b.name,
        id: f.id,
        label: f.label,
        value: f.value,
        unit: f.unit,
        better: f.better,
        target: f.target,
        met: f.target === undefined ? undefined : meets(f),
        reference: reference ? { ...reference } : undefined,
        ratio: ratioToReference(withRef),
        engine: f.engine,
      })
    }
  }
  return rows
}

export function fmtNum(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return 'n/a'
  const a = Math.abs(n)
  if (a >= 1000) return Math.round(n).toLocaleString('en-US')
  if (a >= 100) return n.toFixed(0)
  if (a >= 10) return n.toFixed(1)
  if (a >= 0.01 || a === 0) return n.toFixed(2)
  return n.toPrecision(2)
}

/** One line per summary row for the console. */
export function summaryLine(r: SummaryRow): string {
  const tgt = r.target !== undefined ? ` | target ${r.better === 'higher' ? '≥' : '≤'} ${fmtNum(r.target)}: ${r.met ? 'met' : 'NOT met'}` : ''
  const ref = r.reference ? ` | ${r.reference.engine} ${fmtNum(r.reference.value)} ${r.unit} → ratio ${fmtNum(r.ratio)}${r.ratio !== undefined ? (r.ratio >= 1 ? ' (better)' : ' (worse)') : ''}` : ''
  const eng = r.engine ? ` [reference: ${r.engine}]` : ''
  return `${r.label}: ${fmtNum(r.value)} ${r.unit}${eng}${tgt}${ref}`
}

/** Merges plots that share a compareKey across two or more benches into one plot each. */
export function buildComparisons(benches: BenchRunEntry[]): PlotSpec[] {
  const groups = new Map<string, { bench: string; plot: PlotSpec }[]>()
  for (const b of benches) {
    for (const p of b.result?.plots ?? []) {
      if (!p.compareKey) continue
      const g = groups.get(p.compareKey) ?? []
      g.push({ bench: b.name, plot: p })
      groups.set(p.compareKey, g)
    }
  }
  const out: PlotSpec[] = []
  for (const [key, g] of groups) {
    if (new Set(g.map((x) => x.bench)).size < 2) continue
    const first = g[0]!.plot
    const series: PlotSeries[] = []
    for (const { bench, plot } of g) {
      for (const s of plot.series) {
        const prev = series.find((x) => x.label === s.label)
        if (!prev) {
          series.push({ label: s.label, x: [...s.x], y: [...s.y] })
          continue
        }
        // The same line from both benches (e.g. "offered (ideal)"): merge the points when
        // they agree wherever both have one; otherwise keep both, told apart by bench.
        const at = new Map(prev.x.map((x, i) => [x, prev.y[i]!]))
        if (s.x.every((x, i) => !at.has(x) || at.get(x) === s.y[i])) {
          s.x.forEach((x, i) => at.set(x, s.y[i]!))
          const xs = [...at.keys()].sort((a, b) => a - b)
          prev.x = xs
          prev.y = xs.map((x) => at.get(x)!)
        } else {
          series.push({ label: `${bench}: ${s.label}`, x: [...s.x], y: [...s.y] })
        }
      }
    }
    out.push({ ...first, id: `compare.${key}`, title: `${first.title} — side by side`, series })
  }
  return out
}
