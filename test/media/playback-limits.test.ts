import t from 'tap'
import { createServer, type Server } from 'node:http'
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadAudio } from '../../media/playback.ts'
import { encodeWav } from '../../media/wav.ts'

/** A short valid WAV: 8 kHz mono 16-bit, `samples` of a ramp. */
function wav(samples: number): Buffer {
  return encodeWav(Int16Array.from({ length: samples }, (_, i) => (i % 200) * 100 - 10000), 8000)
}

let server: Server
let base = ''
const hits = { slow: 0 }
t.before(async () => {
  server = createServer((req, res) => {
    if (req.url === '/ok.wav') { res.end(wav(8000)); return }
    if (req.url === '/declared-big.wav') { res.writeHead(200, { 'content-length': String(50 * 1024 * 1024) }); res.write(wav(10)); return }
    if (req.url === '/chunked-big.wav') {
      // No Content-Length: the limit must be enforced while reading.
      res.writeHead(200, { 'transfer-encoding': 'chunked' })
      const chunk = Buffer.alloc(64 * 1024)
      let sent = 0
      const pump = () => { while (sent < 400 && res.write(chunk)) sent++; if (sent < 400) res.once('drain', pump); else res.end() }
      pump()
      return
    }
    if (req.url === '/slow.wav') { hits.slow++; res.writeHead(200); res.write(wav(10).subarray(0, 20)); return } // never finishes
    res.writeHead(404).end()
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`
})
t.teardown(() => { server.closeAllConnections(); server.close() })

t.test('a download within the limits plays', async (t) => {
  const src = await loadAudio(`${base}/ok.wav`, 8000)
  t.equal(src.pcm.length, 8000, 'one second of audio')
})

t.test('a declared length over the limit is refused before reading the body', async (t) => {
  await t.rejects(loadAudio(`${base}/declared-big.wav`, 8000, fetch, { maxBytes: 1024 * 1024 }), /over the 1048576-byte limit/)
})

t.test('a chunked download is cut off once it passes the limit', async (t) => {
  const before = process.memoryUsage().arrayBuffers
  await t.rejects(loadAudio(`${base}/chunked-big.wav`, 8000, fetch, { maxBytes: 1024 * 1024 }), /over the 1048576-byte limit/)
  t.ok(process.memoryUsage().arrayBuffers - before < 8 * 1024 * 1024, 'did not buffer the whole 25 MiB response')
})

t.test('a server that never finishes times out with a clear message', async (t) => {
  const t0 = Date.now()
  await t.rejects(loadAudio(`${base}/slow.wav`, 8000, fetch, { timeoutMs: 300 }), /no complete answer within 300 ms/)
  t.ok(Date.now() - t0 < 5000, `gave up after ${Date.now() - t0} ms`)
  t.equal(hits.slow, 1)
})

t.test('a local file over the limit is refused without reading it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cp-play-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const small = join(dir, 'small.wav')
  writeFileSync(small, wav(800))
  t.equal((await loadAudio(small, 8000)).pcm.length, 800, 'a small file loads')
  const big = join(dir, 'big.wav')
  writeFileSync(big, wav(10))
  truncateSync(big, 64 * 1024 * 1024) // sparse: no disk used
  await t.rejects(loadAudio(big, 8000), /67108864 bytes is over the 10485760-byte limit/)
})
