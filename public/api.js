// The page's REST calls, without the DOM: tested by node --test against a real HTTP server
// (test/api.test.js).

// api calls a JSON route. It resolves with the status and the parsed body (null when there is none)
// and rejects only when the server cannot be reached.
export async function api(method, path, body, token, options = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
    ...options,
  });
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  return { status: res.status, ok: res.ok, data };
}

// errorText says in words why a call was refused: the server's message, or its status.
export function errorText(res) {
  const serverMessage = res.data && res.data.error && typeof res.data.error.message === 'string'
    ? res.data.error.message
    : '';
  return serverMessage || `Something went wrong (HTTP ${res.status}). Please try again.`;
}

// authErrorText says in words why a login or registration was refused.
export function authErrorText(res) {
  if (res.status === 401) return 'Wrong e-mail or password';
  if (res.status === 409 && res.data && res.data.error && res.data.error.code === 'name_taken') {
    return 'This name is already taken: choose another in the Name field';
  }
  if (res.status === 409) return 'This e-mail is already registered';
  return errorText(res);
}
