import pino, { type Logger } from 'pino'
import type { LogLevel } from './config.ts'

/**
 * The root pino logger: JSON lines, or pretty output when stdout is a TTY.
 * Each component takes a child (`component: 'sip-app'`), and call-scoped code
 * takes a grandchild with `callId`, so every call line carries the call id.
 */
export function createRootLogger(level: LogLevel, pretty = process.stdout.isTTY === true): Logger {
  return pino({
    level,
    base: { pid: process.pid },
    // Secrets must never reach a log line, whichever component logs the object.
    redact: { paths: ['password', '*.password', 'secret', '*.secret', 'apiKey', '*.apiKey', 'authorization', '*.authorization', 'headers.authorization', 'req.headers.authorization', 'req.headers["x-api-key"]'], censor: '[redacted]' },
    ...(pretty ? { transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'HH:MM:ss.l' } } } : {}),
  })
}

export type { Logger }
