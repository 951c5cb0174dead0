/** What a scenario sees as `import http from 'k6/http'`. */
export { asyncRequest, del, expectedStatuses, get, head, options, patch, post, put, request, setResponseCallback } from '../http.ts';
