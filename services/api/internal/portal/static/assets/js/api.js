// The REST API client: every call goes to the edge that served the page
// (URLs resolve against <base href>, which carries the edge's path prefix),
// authenticated by the session cookie; writes carry the session's CSRF token.

let csrfToken = '';

/** setCSRF remembers the session's CSRF token for state-changing calls. */
export function setCSRF(token) {
  csrfToken = token || '';
}

/** url resolves an edge path ("api/v1/..." or "/api/v1/...") under the page's base. */
export function url(path) {
  return new URL(String(path).replace(/^\/+/, ''), document.baseURI).toString();
}

/** APIError is a failed call: the HTTP status, the envelope's error key and its message. */
export class APIError extends Error {
  constructor(status, key, message) {
    super(message || `HTTP ${status}`);
    this.name = 'APIError';
    this.status = status;
    this.key = key || '';
  }
}

/**
 * api sends one request and returns the envelope's data, or throws an
 * APIError with the API's own message. A 401 outside the session endpoints
 * also fires "egs:unauthenticated" on window, so the app can go to the login
 * page when a session ends.
 */
export async function api(method, path, body) {
  const headers = {Accept: 'application/json'};
  const init = {method, headers, credentials: 'same-origin', cache: 'no-store'};
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  let res;
  try {
    res = await fetch(url(path), init);
  } catch (e) {
    throw new APIError(0, 'NETWORK', 'The EGS API cannot be reached. Check your connection and try again.');
  }
  let env = null;
  try {
    env = await res.json();
  } catch {
    env = null;
  }
  if (!res.ok || !env || env.error) { // 200, or 201 for some creations
    const msg = env && (env.error?.message || env.message);
    const err = new APIError(res.status, env?.status, msg || `${res.status} ${res.statusText}`);
    if (res.status === 401 && !String(path).includes('session')) {
      window.dispatchEvent(new CustomEvent('egs:unauthenticated', {detail: err}));
    }
    throw err;
  }
  return env.data;
}

export const get = (p) => api('GET', p);
export const post = (p, b) => api('POST', p, b ?? {});
export const put = (p, b) => api('PUT', p, b ?? {});
export const del = (p, b) => api('DELETE', p, b);

/** qs builds a query string from an object, skipping empty values; arrays repeat the key. */
export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    for (const x of Array.isArray(v) ? v : [v]) u.append(k, String(x));
  }
  const s = u.toString();
  return s ? `?${s}` : '';
}

/** list returns the array inside a list reply, whatever its key. */
export function items(data, ...keys) {
  if (Array.isArray(data)) return data;
  for (const k of [...keys, 'items', 'data']) {
    if (data && Array.isArray(data[k])) return data[k];
  }
  return [];
}
