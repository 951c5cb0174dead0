/**
 * Redis key names shared by gateway and drainer (one place, so the two cannot drift).
 * Keys of one SKU share the hash tag {sku} so the quota script touches one Redis Cluster slot.
 */
export const PREFIX = 'spw:';

export const keys = {
  /** Hash: stock (loaded), remaining, perUserLimit, updatedAt. */
  sku: (sku: string) => `${PREFIX}sku:{${sku}}`,
  /** Integer: units of `sku` bought by `userId`. */
  userBought: (sku: string, userId: string) => `${PREFIX}sku:{${sku}}:user:${userId}`,
  /** Set of SKUs loaded through the admin API. */
  skuIndex: () => `${PREFIX}skus`,
  /** String: "P|<hash>|<orderId>" while in flight, "D|<hash>|<status>|<body>" when answered. */
  idempotency: (client: string, key: string) => `${PREFIX}idem:${client}:${key}`,
  /** Hash: status, acceptedAt, partition, offset, deliveredAt, deadLetteredAt, reason. */
  order: (orderId: string) => `${PREFIX}order:${orderId}`,
  /** Hash per downstream, written by the drainer: backlog, etaSeconds, ratePerSecond, updatedAt. */
  backlog: (downstream: string) => `${PREFIX}backlog:${downstream}`,
  /** Set of downstream names publishing backlog. */
  backlogIndex: () => `${PREFIX}backlogs`,
  /** Hash: sha256(api key) -> client name. */
  apiKeys: () => `${PREFIX}apikeys`,
  /** Hash per downstream, written by the admin API, read by every drainer: paused ("1"/"0"), rate (override; "" = none), updatedAt. */
  downstreamControl: (name: string) => `${PREFIX}downstream:${name}:control`,
  /** Shared AIMD factor (0.05..1) and its cut / creep guards. */
  downstreamAimd: (name: string) => `${PREFIX}downstream:${name}:aimd`,
  downstreamAimdCut: (name: string) => `${PREFIX}downstream:${name}:aimd-cut`,
  downstreamAimdCreep: (name: string) => `${PREFIX}downstream:${name}:aimd-creep`,
  /** Sorted set of dead-lettered order ids by time, and a hash orderId -> JSON details (bounded index; the durable copy is the DLQ topic). */
  dlqIndex: (name: string) => `${PREFIX}dlq:${name}`,
  dlqItems: (name: string) => `${PREFIX}dlq:${name}:items`,
  /** List of order ids to re-drive from the DLQ (pushed by the admin API, popped by drainers). */
  redrive: (name: string) => `${PREFIX}redrive:${name}`,
};
