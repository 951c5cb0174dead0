/**
 * Internal errors carry a stable string code and a retriable flag. Each boundary (Kafka wire,
 * HTTP) has one function mapping these to its own codes; nothing matches on messages.
 */
export class SpillwayError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly retriable = false,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'SpillwayError';
  }
}

export function isSpillwayError(err: unknown): err is SpillwayError {
  return err instanceof SpillwayError;
}
