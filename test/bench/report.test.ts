import t from 'tap'
import type { BenchResult } from '../../bench/bench-result.ts'
import { renderReportHtml } from '../../bench/report-html.ts'
import { buildComparisons, buildSummary, type BenchRunEntry, type RunReport } from '../../bench/run-report.ts'
import { cdfFromSamples, histogramFromSamples, niceTicks, renderPlot } from '../../bench/svg-plot.ts'

const callplane: BenchResult = {
  bench: 'sip-call-rate',
  mode: 'quick',
  startedAt: '2026-01-01T00:00:00.000Z',
  durationSec: 12,
  figures: [
    { id: 'sip.max_cps_zero_failures', label: 'max calls/s with zero failures', value: 800, unit: 'calls/s', better: 'higher', target: 1000 },
    { id: 'sip.cpu_sec_per_1000_calls', label: 'CPU per 1,000 calls', value: 0.5, unit: 's', better: 'lower', target: 1 },
  ],
  plots: [
    { id: 'cap', compareKey: 'sip.capacity', title: 'Capacity <curve>', kind: 'line', xLabel: 'offered', yLabel: 'achieved', series: [{ label: 'callplane', x: [200, 400, 800], y: [200, 400, 790] }, { label: 'kamailio', x: [200, 400, 800], y: [200, 400, 800] }, { label: 'ideal', x: [200, 400, 800], y: [200, 400, 800] }], marks: [{ axis: 'y', value: 1000, label: 'target' }] },
    { id: 'lat', title: 'Latency', kind: 'histogram', xLabel: 'ms', yLabel: 'count', series: [histogramFromSamples('barge-in', [1, 2, 2, 3, 3, 3, 4, 4, 5, 9], 8)] },
    { id: 'cdf', title: 'Latency CDF', kind: 'cdf', xLabel: 'ms', yLabel: 'fraction', series: [cdfFromSamples('barge-in', [5, 1, 3, 2, 4])] },
  ],
  notes: ['a note with <html> & "quotes"'],
}
const kamailio: BenchResult = {
  bench: 'sip-kamailio-reference',
  mode: 'quick',
  startedAt: '2026-01-01T00:00:00.000Z',
  durationSec: 20,
  figures: [
    { id: 'ref.kamailio.sip.max_cps_zero_failures', label: 'Kamailio max calls/s', value: 2000, unit: 'calls/s', better: 'higher', engine: 'kamailio', referenceFor: ['sip.max_cps_zero_failures'] },
    { id: 'ref.kamailio.sip.cpu_sec_per_1000_calls', label: 'Kamailio CPU per 1,000 calls', value: 0.25, unit: 's', better: 'lower', engine: 'kamailio', referenceFor: ['sip.cpu_sec_per_1000_calls'] },
  ],
  plots: [
    { id: 'kcap', compareKey: 'sip.capacity', title: 'Kamailio capacity', kind: 'line', xLabel: 'offered', yLabel: 'achieved', series: [{ label: 'kamailio', x: [200, 400, 800, 1600], y: [200, 400, 780, 1500] }, { label: 'ideal', x: [200, 1600], y: [200, 1600] }] },
  ],
}

function fixture(): RunReport {
  const benches: BenchRunEntry[] = [
    { name: 'sip-call-rate', script: 'bench/sip-call-rate.ts', status: 'ok', durationSec: 12, result: callplane },
    { name: 'sip-kamailio-reference', script: 'bench/sip-kamailio-reference.ts', status: 'ok', durationSec: 20, result: kamailio },
    { name: 'media', status: 'missing', durationSec: 0, error: 'no bench/media-*.ts yet' },
    { name: 'agent-barge-in', script: 'bench/agent-barge-in.ts', status: 'timeout', durationSec: 30, error: 'did not finish within 30 s', logTail: 'line 1\nline <2>' },
  ]
  return {
    kind: 'callplane-bench-run', schema: 1, mode: 'quick',
    startedAt: '2026-01-01T00:00:00.000Z', finishedAt: '2026-01-01T00:01:00.000Z', durationSec: 60,
    machine: { hostname: 'h', cpuModel: 'Test CPU', cores: 2, memoryGiB: 4, kernel: '6.1', os: 'Debian', node: 'v20', npm: '10', tools: { sipp: 'SIPp v3.6.1', kamailio: null }, loadAvgAtStart: [0.1, 0.2, 0.3] },
    git: { commit: 'abcdef1234567890', branch: 'main', dirty: false },
    benches, summary: buildSummary(benches), comparisons: buildComparisons(benches), notes: ['shared box'],
  }
}

t.test('cross-bench references are attached and ratios oriented', async (t) => {
  const rows = fixture().summary
  const cps = rows.find((r) => r.id === 'sip.max_cps_zero_failures')!
  t.same(cps.reference, { engine: 'kamailio', value: 2000, fromBench: 'sip-kamailio-reference' })
  t.equal(cps.ratio, 0.4)
  t.equal(cps.met, false)
  const cpu = rows.find((r) => r.id === 'sip.cpu_sec_per_1000_calls')!
  t.equal(cpu.ratio, 0.5, 'lower is better: reference / value')
  t.equal(cpu.met, true)
  const ref = rows.find((r) => r.id === 'ref.kamailio.sip.max_cps_zero_failures')!
  t.equal(ref.reference, undefined, 'a reference figure gets no reference itself')
  t.equal(ref.engine, 'kamailio')
})

t.test('plots sharing a compareKey are merged, colliding labels prefixed by bench', async (t) => {
  const [c, ...rest] = fixture().comparisons!
  t.equal(rest.length, 0)
  t.equal(c!.id, 'compare.sip.capacity')
  t.same(c!.series.map((s) => s.label), ['callplane', 'kamailio', 'ideal', 'sip-kamailio-reference: kamailio'])
  t.same(c!.series[2]!.x, [200, 400, 800, 1600], 'agreeing lines are merged into one')
})

t.test('the HTML report is self-contained and holds every plot and status', async (t) => {
  const html = renderReportHtml(fixture())
  t.match(html, /^<!doctype html>/)
  t.equal((html.match(/<svg /g) ?? []).length, 5, 'one inline SVG per plot, plus one side-by-side plot')
  t.match(html, /Side by side/)
  t.match(html, /class="plot plot-line"/)
  t.match(html, /class="plot plot-histogram"/)
  t.match(html, /class="plot plot-cdf"/)
  t.match(html, /NOT met/)
  t.match(html, /st-missing/)
  t.match(html, /st-timeout/)
  t.match(html, /line &lt;2&gt;/, 'log tail escaped')
  t.match(html, /Capacity &lt;curve&gt;/, 'titles escaped')
  t.notMatch(html, /<script/i, 'no scripts')
  t.notMatch(html, /(src|href)="https?:/i, 'no external resources')
})

t.test('plots: axes, legend, bars, empty data', async (t) => {
  const line = renderPlot(callplane.plots[0]!)
  t.match(line, /class="legend-item"/)
  t.match(line, /stroke-dasharray/, 'target mark drawn')
  t.equal((line.match(/<circle /g) ?? []).length, 9)
  const hist = renderPlot(callplane.plots[1]!)
  t.equal((hist.match(/class="bar"/g) ?? []).length, 8)
  const empty = renderPlot({ id: 'e', title: 'Empty', kind: 'line', xLabel: 'x', yLabel: 'y', series: [] })
  t.match(empty, /no data/)
  t.same(niceTicks(0, 10, 6), [0, 2, 4, 6, 8, 10])
  const h = histogramFromSamples('s', [0, 1, 2, 3], 2)
  t.same(h.y, [2, 2])
  const c = cdfFromSamples('c', [3, 1, 2])
  t.same(c.y.at(-1), 1)
})
