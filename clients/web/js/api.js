// The kipd API from the browser: same origin, the kipd_session cookie
// (HttpOnly, never seen here) and the CSRF token, kept in memory only and
// fetched again after a reload with GET /v1/session.

let csrf = null;
let onUnauthenticated = () => {};

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
    this.errors = this.problem.errors || [];
  }
}

export function setCsrf(token) { csrf = token; }
export function setUnauthenticatedHandler(fn) { onUnauthenticated = fn; }

export async function api(method, path, { body, ifMatch, ifNoneMatch, quiet401 } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD' && csrf) headers['X-CSRF-Token'] = csrf;
  if (ifMatch !== undefined && ifMatch !== null) headers['If-Match'] = `"${ifMatch}"`;
  if (ifNoneMatch !== undefined && ifNoneMatch !== null) headers['If-None-Match'] = `"${ifNoneMatch}"`;
  let res;
  try {
    res = await fetch(path, {
      method, headers, credentials: 'same-origin', cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, { detail: 'network', errors: [], code: 'network' });
  }
  if (res.status === 304) return { status: 304, body: null, etag: res.headers.get('ETag') };
  if (res.status === 204) return { status: 204, body: null };
  const ct = res.headers.get('Content-Type') || '';
  const data = ct.includes('json') ? await res.json() : await res.text();
  if (!res.ok) {
    if (res.status === 401 && !quiet401) onUnauthenticated();
    throw new ApiError(res.status, typeof data === 'object' ? data : { detail: data });
  }
  return { status: res.status, body: data, etag: res.headers.get('ETag') };
}

export const get = (p, o) => api('GET', p, o).then((r) => r.body);
export const post = (p, body, o = {}) => api('POST', p, { ...o, body }).then((r) => r.body);
export const patch = (p, body, o = {}) => api('PATCH', p, { ...o, body }).then((r) => r.body);
export const put = (p, body, o = {}) => api('PUT', p, { ...o, body }).then((r) => r.body);
export const del = (p, o) => api('DELETE', p, o).then((r) => r.body);
