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
};
