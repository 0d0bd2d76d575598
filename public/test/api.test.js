import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';

import { api, authErrorText, errorText } from '../api.js';

// serve answers every request with handler, on a loopback port, for the test's length.
async function serve(t, handler) {
  const server = createServer(handler);
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  return `http://127.0.0.1:${server.address().port}`;
}

test('api sends JSON with the token and reads JSON back', async (t) => {
  let seen;
  const base = await serve(t, (req, res) => {
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => {
      seen = { method: req.method, auth: req.headers.authorization, type: req.headers['content-type'], body };
      res.writeHead(201, { 'Content-Type': 'application/json' });
      res.end('{"id":7}');
    });
  });
  const res = await api('POST', `${base}/api/x`, { text: 'hi' }, 'tok');
  assert.deepEqual(res, { status: 201, ok: true, data: { id: 7 } });
  assert.deepEqual(seen, { method: 'POST', auth: 'Bearer tok', type: 'application/json', body: '{"text":"hi"}' });
});

test('api answers a body that is not JSON with null data, and rejects when nobody answers', async (t) => {
  const base = await serve(t, (req, res) => {
    res.writeHead(502);
    res.end('Bad Gateway');
  });
  assert.deepEqual(await api('GET', `${base}/api/me`), { status: 502, ok: false, data: null });
  await assert.rejects(api('GET', 'http://127.0.0.1:1/api/me'));
});

test('authErrorText says why a login or registration was refused', () => {
  const err = (status, code, message) => ({ status, data: { error: { code, message } } });
  assert.equal(authErrorText(err(401, 'unauthorized', 'x')), 'Wrong e-mail or password');
  assert.match(authErrorText(err(409, 'name_taken', 'x')), /name is already taken/);
  assert.equal(authErrorText(err(409, 'conflict', 'x')), 'This e-mail is already registered');
  assert.equal(authErrorText(err(429, 'rate_limited', 'slow down')), 'slow down');
  assert.match(authErrorText({ status: 500, data: null }), /HTTP 500/);
});

test('errorText gives the server message, or the status when there is none', () => {
  assert.equal(errorText({ status: 401, data: { error: { code: 'unauthorized', message: 'token expired' } } }), 'token expired');
  assert.match(errorText({ status: 404, data: null }), /HTTP 404/);
});
