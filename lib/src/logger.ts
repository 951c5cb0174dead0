/**
 * NDJSON logging (pino) to stdout for every component. Credentials are redacted wherever they
 * would appear in a logged object (request headers, config, error details): no code path logs
 * them on purpose, this is the net under that.
 */
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

const SECRET_FIELDS = ['authorization', 'cookie', 'x-api-key', 'x-admin-token', 'apiKey', 'adminToken', 'token', 'password', 'secret'];

/** Top-level, one and two levels down (e.g. `req.headers.authorization`, `config.adminToken`). */
export const REDACT_PATHS = SECRET_FIELDS.flatMap((f) => {
  const key = /^[A-Za-z_$][\w$]*$/.test(f) ? f : `["${f}"]`;
  const dot = key.startsWith('[') ? key : `.${key}`;
  return [key, `*${dot}`, `*.*${dot}`];
});

export function createLogger(name: string, level: string = 'info', destination?: DestinationStream): Logger {
  const options = { name, level, base: { component: name }, timestamp: pino.stdTimeFunctions.isoTime, redact: { paths: REDACT_PATHS, censor: '<redacted>' } };
  return destination === undefined ? pino(options) : pino(options, destination);
}
