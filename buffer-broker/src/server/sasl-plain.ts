/**
 * SASL/PLAIN (RFC 4616) credential check, as Kafka's PlainSaslServer does it: the client token is
 * `authzid NUL authcid NUL passwd`; the authorization id must be empty or equal to the user name.
 *
 * Passwords are compared in constant time: both sides are hashed to a fixed length first, and an
 * unknown user is compared against a random digest so that it costs the same as a known one.
 * Pure apart from hashing: no I/O, and no password ever leaves this module (not in results,
 * messages or logs).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export const PLAIN = 'PLAIN';

export type PlainResult =
  | { ok: true; user: string }
  | { ok: false; user: string | null; reason: 'malformed' | 'bad_credentials'; message: string };

function digest(b: Buffer | string): Buffer {
  return createHash('sha256').update(b).digest();
}

export class PlainAuthenticator {
  private readonly digests = new Map<string, Buffer>();
  private readonly unknownUser = digest(randomBytes(32));

  constructor(users: ReadonlyMap<string, string>) {
    for (const [user, password] of users) this.digests.set(user, digest(Buffer.from(password, 'utf8')));
  }

  get userCount(): number {
    return this.digests.size;
  }

  verify(token: Buffer): PlainResult {
    const first = token.indexOf(0);
    const second = first < 0 ? -1 : token.indexOf(0, first + 1);
    if (first < 0 || second < 0 || token.indexOf(0, second + 1) >= 0) {
      const parts = first < 0 ? 1 : second < 0 ? 2 : 'more than 3';
      return { ok: false, user: null, reason: 'malformed', message: `Invalid SASL/PLAIN response: expected 3 tokens, got ${parts}` };
    }
    const authzid = token.subarray(0, first).toString('utf8');
    const user = token.subarray(first + 1, second).toString('utf8');
    const password = token.subarray(second + 1);
    if (user === '') return { ok: false, user: null, reason: 'malformed', message: 'Authentication failed: username not specified' };
    if (password.length === 0) return { ok: false, user, reason: 'malformed', message: 'Authentication failed: password not specified' };
    const want = this.digests.get(user);
    const match = timingSafeEqual(digest(password), want ?? this.unknownUser) && want !== undefined;
    if (!match) return { ok: false, user, reason: 'bad_credentials', message: 'Authentication failed: Invalid username or password' };
    if (authzid !== '' && authzid !== user) {
      return { ok: false, user, reason: 'bad_credentials', message: 'Authentication failed: Client requested an authorization id that is different from username' };
    }
    return { ok: true, user };
  }
}
