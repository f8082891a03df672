/** The slice of autocannon's API that bench/api-read.ts uses (the package ships no types). */
declare module 'autocannon' {
  interface Histogram { average: number; p50: number; p90: number; p99: number; max: number; total: number }
  interface Result { requests: Histogram; latency: Histogram; errors: number; timeouts: number; non2xx: number }
  interface Options {
    url: string
    connections?: number
    duration?: number
    pipelining?: number
    overallRate?: number
    headers?: Record<string, string>
  }
  function autocannon(opts: Options, cb: (err: Error | null, result: Result) => void): unknown
  export default autocannon
}
