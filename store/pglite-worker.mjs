// The embedded PGlite backend in its own thread. PGlite is PostgreSQL compiled
// to WebAssembly: every query runs synchronously on the thread that owns it.
// On the main thread a 10 ms list query would stall SIP transactions, RTP
// pacing and every other request for 10 ms; here it only occupies this thread,
// and the main thread talks to it over the Postgres wire protocol on loopback
// (pglite-socket), exactly as it talks to a real PostgreSQL.
//
// Plain JavaScript on purpose: worker threads do not inherit tsx's module hooks.
import { parentPort, workerData } from 'node:worker_threads'
import { PGlite } from '@electric-sql/pglite'
import { PGLiteSocketServer } from '@electric-sql/pglite-socket'

const { dir } = workerData
let db
let server
try {
  db = await PGlite.create(dir)
  // PGlite is one backend: the main thread keeps a single pooled connection.
  // Two are admitted so that when pg-pool discards a client after a query
  // error and reconnects at once, the new connection is not refused ("Too many
  // connections") while the old socket is still closing.
  server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: 2 })
  await server.start()
  parentPort.postMessage({ kind: 'ready', conn: server.getServerConn() })
} catch (err) {
  parentPort.postMessage({ kind: 'error', message: err instanceof Error ? err.message : String(err) })
}

parentPort.on('message', async (m) => {
  if (m?.kind !== 'close') return
  try {
    await server?.stop()
    await db?.close()
  } finally {
    parentPort.postMessage({ kind: 'closed' })
  }
})
