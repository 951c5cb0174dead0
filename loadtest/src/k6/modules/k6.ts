/** What a scenario sees as `import ... from 'k6'`. */
export { check, fail, group, randomSeed, sleep } from '../k6.ts';
