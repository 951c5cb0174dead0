/** What a scenario sees as `import { Counter, Gauge, Rate, Trend } from 'k6/metrics'`. */
export { Counter, Gauge, Rate, Trend } from '../metrics.ts';
