/**
 * The order as it travels: validated at the gateway, stored in the buffer as JSON (key = SKU),
 * delivered by the drainer. Shared contract between gateway and drainer.
 */
import { z } from 'zod';

export const SKU_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;

export const orderRequestSchema = z.strictObject({
  sku: z.string().regex(SKU_PATTERN, 'sku must be 1-64 characters of [A-Za-z0-9._:-]'),
  userId: z.string().min(1).max(128),
  quantity: z.number().int().min(1).max(1000),
  priceCents: z.number().int().min(0).max(1_000_000_000),
  currency: z.string().regex(/^[A-Z]{3}$/, 'currency must be an ISO 4217 code').optional(),
  metadata: z.record(z.string().max(64), z.string().max(512)).optional(),
});

export type OrderRequest = z.infer<typeof orderRequestSchema>;

export interface Order extends OrderRequest {
  orderId: string;
  /** Epoch ms when the gateway accepted it. */
  acceptedAt: number;
}

export type OrderStatus = 'accepted' | 'delivered' | 'dead_lettered';
