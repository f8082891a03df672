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
  // Every connection shares PGlite's one backend session, so whatever the last
  // connection left in it (named prepared statements above all, also GUCs,
  // cursors, temp tables) would leak into the next one. pg-pool discards its
  // client after *any* query error (pool.query releases with the error, and
  // pg-pool cannot tell a constraint violation from a broken socket), and the
  // new client re-prepares its named statements: 42P05 "prepared statement
  // already exists" on every later use. A new connection must start as a new
  // PostgreSQL backend would: clean. The reset takes PGlite's lock here, when
  // the connection is attached, so it runs before the connection's first
  // message (socket data is handled on later turns of the event loop).
  server.addEventListener('connection', () => {
    db.runExclusive(() => resetSession(db)).catch((err) => {
      parentPort.postMessage({ kind: 'log', level: 'error', message: `PGlite session reset failed: ${err instanceof Error ? err.message : String(err)}` })
    })
  })
  await server.start()
  parentPort.postMessage({ kind: 'ready', conn: server.getServerConn() })
} catch (err) {
  parentPort.postMessage({ kind: 'error', message: err instanceof Error ? err.message : String(err) })
}

/**
 * What a new backend would look like: DISCARD ALL (the reset pgbouncer and
 * pgpool run between clients) drops prepared statements, portals, temp
 * tables, listeners and session settings. It cannot run inside a transaction
 * block; a transaction still open here was left by a connection that is gone
 * (pglite-socket rolls back only when the closing connection was the last to
 * query), so it is rolled back first. Runs under runExclusive, where PGlite's
 * query methods would wait on the lock held: hence the raw protocol.
 */
async function resetSession(pglite) {
  if (pglite.isInTransaction()) await pglite.execProtocolRaw(simpleQuery('ROLLBACK'))
  await pglite.execProtocolRaw(simpleQuery('DISCARD ALL'))
}

/** A frontend Query message (PostgreSQL protocol, "Message Formats": 'Q', int32 length, query string). */
function simpleQuery(sql) {
  const text = Buffer.from(`${sql}\0`, 'utf8')
  const msg = Buffer.alloc(5 + text.length)
  msg[0] = 0x51
  msg.writeInt32BE(4 + text.length, 1)
  text.copy(msg, 5)
  return new Uint8Array(msg)
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
