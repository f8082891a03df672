import { writeFileSync } from 'node:fs'

/**
 * The contract every bench script follows, so `npm run bench` can run them
 * side by side and build one report:
 *
 *   tsx bench/<name>.ts [--quick|--full] [--out result.json]
 *
 * The script prints progress and a human summary to stdout, and writes a
 * BenchResult as JSON to --out (and to stdout's last line when --out is absent).
 * Load generation stays on loopback, bounded in count and time.
 */
export interface BenchFigure {
  /** Stable id, e.g. 'sip.max_cps_zero_failures'. */
  id: string
  label: string
  value: number
  unit: string
  better: 'higher' | 'lower'
  /** The target, when one exists. */
  target?: number
  /** Same work measured on a reference engine in the same run. */
  reference?: { engine: string; value: number }
  /**
   * Set on figures measured on a reference engine (e.g. 'kamailio'). The
   * orchestrator (bench/run.ts) attaches this figure as `reference` to every
   * figure of another bench whose id is listed in `referenceFor`, so a
   * reference bench and the Callplane bench can run as separate scripts.
   */
  engine?: string
  referenceFor?: string[]
}

export interface PlotSeries {
  label: string
  x: number[]
  y: number[]
}

export interface PlotSpec {
  id: string
  title: string
  kind: 'line' | 'histogram' | 'cdf'
  xLabel: string
  yLabel: string
  series: PlotSeries[]
  /** Optional dashed reference lines (targets), drawn by bench/svg-plot.ts. */
  marks?: { axis: 'x' | 'y'; value: number; label: string }[]
  /** Log10 x axis. */
  logX?: boolean
  /**
   * Plots from different benches with the same compareKey (e.g. a Callplane
   * bench and its reference engine's) are also merged into one side-by-side
   * plot by the orchestrator.
   */
  compareKey?: string
}

export interface BenchResult {
  bench: string
  mode: 'quick' | 'full'
  startedAt: string
  durationSec: number
  figures: BenchFigure[]
  plots: PlotSpec[]
  /** Free-form extra data (per-step measurements) for whoever digs deeper. */
  details?: unknown
  /** What was not measured and why, honestly. */
  notes?: string[]
}

export interface BenchArgs {
  mode: 'quick' | 'full'
  out: string | undefined
}

export function parseBenchArgs(argv = process.argv.slice(2)): BenchArgs {
  const i = argv.indexOf('--out')
  return { mode: argv.includes('--full') ? 'full' : 'quick', out: i >= 0 ? argv[i + 1] : undefined }
}

/** A figure's ratio to its reference, oriented so > 1 means we do better. */
export function ratioToReference(f: BenchFigure): number | undefined {
  if (!f.reference || f.reference.value === 0 || f.value === 0) return undefined
  return f.better === 'higher' ? f.value / f.reference.value : f.reference.value / f.value
}

export function summarize(result: BenchResult): string {
  const lines = [`== ${result.bench} (${result.mode}, ${result.durationSec.toFixed(0)} s)`]
  for (const f of result.figures) {
    const ref = f.reference ? `   ${f.reference.engine}: ${fmt(f.reference.value)} ${f.unit} (ratio ${fmt(ratioToReference(f) ?? NaN)})` : ''
    const tgt = f.target !== undefined ? `   target ${f.better === 'higher' ? '≥' : '≤'} ${fmt(f.target)} ${meets(f) ? 'met' : 'NOT met'}` : ''
    lines.push(`  ${f.label}: ${fmt(f.value)} ${f.unit}${tgt}${ref}`)
  }
  for (const n of result.notes ?? []) lines.push(`  note: ${n}`)
  return lines.join('\n')
}

export function meets(f: BenchFigure): boolean {
  if (f.target === undefined) return true
  return f.better === 'higher' ? f.value >= f.target : f.value <= f.target
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return 'n/a'
  return Math.abs(n) >= 100 ? n.toFixed(0) : n.toFixed(2)
}

/** Prints the summary and writes the JSON where the orchestrator asked for it. */
export function finishBench(result: BenchResult, args: BenchArgs): void {
  process.stdout.write(`${summarize(result)}\n`)
  const json = JSON.stringify(result, null, 2)
  if (args.out) writeFileSync(args.out, json)
  else process.stdout.write(`${JSON.stringify(result)}\n`)
}

/** Percentile of an ascending-sorted array (nearest rank). */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[i]!
}
