import { describe, expect, it } from 'vitest';
import { PlainAuthenticator } from '../../src/server/sasl-plain.ts';
import { loadBrokerConfig, loadSaslPlainUsers } from '../../src/config.ts';
import { redactedConfig } from '../../../lib/src/config.ts';
import { brokerSettings } from '../../src/config.ts';
import fs from 'node:fs';
import path from 'node:path';
import { tempDir } from '../../../lib/src/testing/processes.ts';

const auth = new PlainAuthenticator(new Map([['alice', 'secret'], ['bob', 'p:w,d']]));
const token = (authzid: string, user: string, password: string) => Buffer.from(`${authzid}\0${user}\0${password}`);

describe('SASL/PLAIN verification', () => {
  it('accepts the right password, with an empty or matching authorization id', () => {
    expect(auth.verify(token('', 'alice', 'secret'))).toEqual({ ok: true, user: 'alice' });
    expect(auth.verify(token('bob', 'bob', 'p:w,d'))).toEqual({ ok: true, user: 'bob' });
  });

  it('refuses wrong passwords, unknown users and other authorization ids with Kafka\'s messages', () => {
    for (const t of [token('', 'alice', 'Secret'), token('', 'alice', 'secret2'), token('', 'carol', 'secret')]) {
      expect(auth.verify(t)).toMatchObject({ ok: false, reason: 'bad_credentials', message: 'Authentication failed: Invalid username or password' });
    }
    expect(auth.verify(token('alice', 'bob', 'p:w,d'))).toMatchObject({ ok: false, message: /authorization id that is different/ });
  });

  it('refuses malformed tokens', () => {
    expect(auth.verify(Buffer.from('alice'))).toMatchObject({ ok: false, reason: 'malformed', message: /expected 3 tokens, got 1/ });
    expect(auth.verify(Buffer.from('\0alice'))).toMatchObject({ ok: false, reason: 'malformed', message: /got 2/ });
    expect(auth.verify(Buffer.from('\0alice\0secret\0x'))).toMatchObject({ ok: false, reason: 'malformed' });
    expect(auth.verify(token('', '', 'secret'))).toMatchObject({ ok: false, message: /username not specified/ });
    expect(auth.verify(token('', 'alice', ''))).toMatchObject({ ok: false, message: /password not specified/ });
    expect(auth.verify(Buffer.alloc(0))).toMatchObject({ ok: false, reason: 'malformed' });
  });

  it('never puts the password in a result', () => {
    expect(JSON.stringify(auth.verify(token('', 'alice', 'wrong-pw-123')))).not.toContain('wrong-pw-123');
  });
});

describe('SASL users settings', () => {
  it('is off by default and parses user:password lists (password may contain ":")', () => {
    expect(loadSaslPlainUsers(loadBrokerConfig([], {}).config)).toBeNull();
    const c = loadBrokerConfig(['--sasl-plain-users', 'alice:a:b,bob:x'], {}).config;
    expect([...(loadSaslPlainUsers(c) ?? [])]).toEqual([['alice', 'a:b'], ['bob', 'x']]);
  });

  it('reads a users file and merges it; reports bad lines without the password', () => {
    const dir = tempDir('sasl-users');
    const file = path.join(dir, 'users');
    fs.writeFileSync(file, '# users\nalice:pa,ss word\n\ncarol: spaced\n');
    const c = loadBrokerConfig(['--sasl-plain-users-file', file], { SPILLWAY_SASL_PLAIN_USERS: 'bob:b' }).config;
    expect([...(loadSaslPlainUsers(c) ?? [])]).toEqual([['bob', 'b'], ['alice', 'pa,ss word'], ['carol', ' spaced']]);
    fs.writeFileSync(file, 'alice:x\nnopassword-hunter2\nalice:y\n');
    expect(() => loadSaslPlainUsers({ saslPlainUsers: '', saslPlainUsersFile: file })).toThrow(/users:2: expected user:password[\s\S]*users:3: user "alice" given twice/);
    try {
      loadSaslPlainUsers({ saslPlainUsers: '', saslPlainUsersFile: file });
    } catch (err) {
      expect(String(err)).not.toContain('hunter2');
    }
    expect(() => loadSaslPlainUsers({ saslPlainUsers: '', saslPlainUsersFile: path.join(dir, 'missing') })).toThrow(/ENOENT/);
  });

  it('rejects malformed lists without echoing them, and redacts them in --print-config', () => {
    expect(() => loadBrokerConfig(['--sasl-plain-users', 'alice:one,alice:two'], {})).toThrow(/--sasl-plain-users=<redacted>/);
    expect(() => loadBrokerConfig([], { SPILLWAY_SASL_PLAIN_USERS: 'alice' })).toThrow(/SPILLWAY_SASL_PLAIN_USERS=<redacted>/);
    expect(() => loadBrokerConfig([], { SPILLWAY_SASL_PLAIN_USERS: 'alice:' })).toThrow(/user:password pairs/);
    const c = loadBrokerConfig(['--sasl-plain-users', 'alice:topsecret'], {}).config;
    const printed = JSON.stringify(redactedConfig(brokerSettings, c));
    expect(printed).not.toContain('topsecret');
    expect(printed).toContain('"saslPlainUsers":"<redacted>"');
  });
});
