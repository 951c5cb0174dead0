/** What a scenario sees as `import exec from 'k6/execution'`. */
export { instance, scenario, test, vu } from '../execution.ts';
