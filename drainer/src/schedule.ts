/**
 * Delivery windows: given the time and a downstream's time zone, the rate that applies now
 * (or a pause). Outside every window the base rate applies. Windows may wrap midnight
 * (22:00-08:00). Pure: the clock is a parameter.
 */
import type { DownstreamConfig } from './config.ts';

export interface WindowState {
  /** Deliveries per second permitted by the schedule now (0 when paused). */
  rate: number;
  paused: boolean;
  /** Which window applies ("base" outside all of them). */
  window: string;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** Minutes since local midnight in `timeZone`. */
export function localMinutes(nowMs: number, timeZone: string): number {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-GB', { timeZone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    formatters.set(timeZone, f);
  }
  const parts = f.formatToParts(new Date(nowMs));
  const h = Number(parts.find((p) => p.type === 'hour')?.value ?? 0);
  const m = Number(parts.find((p) => p.type === 'minute')?.value ?? 0);
  return h * 60 + m;
}

function minutes(hhmm: string): number {
  return Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));
}

export function inWindow(now: number, from: number, to: number): boolean {
  if (from === to) return true; // a full day
  return from < to ? now >= from && now < to : now >= from || now < to;
}

export function windowState(d: Pick<DownstreamConfig, 'rate' | 'timezone' | 'windows'>, nowMs: number): WindowState {
  const now = localMinutes(nowMs, d.timezone);
  for (const w of d.windows) {
    if (inWindow(now, minutes(w.from), minutes(w.to))) {
      const name = `${w.from}-${w.to}`;
      return w.pause ? { rate: 0, paused: true, window: name } : { rate: w.rate ?? d.rate, paused: false, window: name };
    }
  }
  return { rate: d.rate, paused: false, window: 'base' };
}

/** Seconds until the schedule permits deliveries again (0 if it does now), scanning minute by minute up to a week. */
export function secondsUntilOpen(d: Pick<DownstreamConfig, 'rate' | 'timezone' | 'windows'>, nowMs: number): number {
  if (!windowState(d, nowMs).paused) return 0;
  for (let m = 1; m <= 7 * 24 * 60; m++) {
    if (!windowState(d, nowMs + m * 60_000).paused) return m * 60 - Math.floor((nowMs % 60_000) / 1000);
  }
  return Number.POSITIVE_INFINITY;
}
