/**
 * Kafka SASL client settings shared by the gateway and the drainer (both reach the buffer through
 * kafkajs): the three settings, their pairing check, and kafkajs's `sasl` option built from them.
 */
import type { SASLOptions } from 'kafkajs';
import { z } from 'zod';
import { ConfigError, setting } from './config.ts';

type Mechanism = 'plain' | 'scram-sha-256' | 'scram-sha-512';

export const kafkaSaslSettings = {
  kafkaSaslMechanism: setting({
    env: 'KAFKA_SASL_MECHANISM',
    flag: 'kafka-sasl-mechanism',
    schema: z.enum(['plain', 'scram-sha-256', 'scram-sha-512']),
    default: 'plain' as Mechanism,
    description: 'SASL mechanism used when KAFKA_SASL_USERNAME is set (the embedded broker speaks plain; a real Kafka may use scram-sha-256/512)',
  }),
  kafkaSaslUsername: setting({ env: 'KAFKA_SASL_USERNAME', flag: 'kafka-sasl-username', schema: z.string(), default: '', description: 'authenticate to Kafka with SASL as this user (empty = no SASL)' }),
  kafkaSaslPassword: setting({ env: 'KAFKA_SASL_PASSWORD', flag: 'kafka-sasl-password', schema: z.string(), default: '', description: 'password for KAFKA_SASL_USERNAME', secret: true }),
};

/** The loaded values of kafkaSaslSettings. */
export interface KafkaSaslSettings {
  kafkaSaslMechanism: Mechanism;
  kafkaSaslUsername: string;
  kafkaSaslPassword: string;
}

/** SASL credentials come as a pair: a user without a password (or the reverse) is a mistake, not "no SASL". */
export function checkKafkaSasl(c: { kafkaSaslUsername: string; kafkaSaslPassword: string }): void {
  if ((c.kafkaSaslUsername === '') !== (c.kafkaSaslPassword === '')) {
    throw new ConfigError([c.kafkaSaslUsername === '' ? 'KAFKA_SASL_PASSWORD is set without KAFKA_SASL_USERNAME' : 'KAFKA_SASL_USERNAME is set without KAFKA_SASL_PASSWORD']);
  }
}

/** kafkajs's `sasl` option for these settings, or undefined when no user is set. */
export function kafkaSasl(s: KafkaSaslSettings): SASLOptions | undefined {
  if (s.kafkaSaslUsername === '') return undefined;
  return { mechanism: s.kafkaSaslMechanism, username: s.kafkaSaslUsername, password: s.kafkaSaslPassword } as SASLOptions;
}
