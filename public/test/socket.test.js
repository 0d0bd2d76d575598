import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  BACKOFF_CAP_MS, BACKOFF_START_MS, SHUTDOWN_DELAY_MIN_MS, SHUTDOWN_DELAY_SPREAD_MS,
  backoffDelay, closeAction, disconnectedText, restartDelay, socketURL,
} from '../socket.js';

test('the backoff doubles from its start to its cap, within half and one and a half times', () => {
  assert.equal(backoffDelay(0, () => 0.5), BACKOFF_START_MS);
  assert.equal(backoffDelay(3, () => 0.5), BACKOFF_START_MS * 8);
  assert.equal(backoffDelay(0, () => 0), BACKOFF_START_MS / 2);
  assert.ok(Math.abs(backoffDelay(0, () => 0.999999) - BACKOFF_START_MS * 1.499999) < 1e-6);
  assert.equal(backoffDelay(50, () => 0.999999), BACKOFF_CAP_MS, 'never past the cap, however many failures');
  assert.ok(backoffDelay(50, () => 0) >= BACKOFF_CAP_MS / 2);
});

test('after a restart, clients come back soon and spread out', () => {
  assert.equal(restartDelay(() => 0), SHUTDOWN_DELAY_MIN_MS);
  assert.equal(restartDelay(() => 1), SHUTDOWN_DELAY_MIN_MS + SHUTDOWN_DELAY_SPREAD_MS);
});

test('what to do after each close code', () => {
  const cases = [
    [1000, false, 'halt'],
    [1003, false, 'halt'],
    [1007, false, 'halt'],
    [1009, false, 'halt'],
    [4000, false, 'halt'],
    [4099, false, 'halt'],
    [4001, false, 'renew'],
    [1008, false, 'renew'],
    [1006, true, 'renew'], // token_expired came first
    [1001, false, 'soon'],
    [1012, false, 'soon'],
    [1006, false, 'check'],
    [1011, false, 'check'],
    [4100, false, 'check'], // too slow: reconnect with backoff
  ];
  for (const [code, expired, want] of cases) {
    const action = closeAction(code, '', expired);
    const got = action.halt ? 'halt' : action.renew ? 'renew' : action.reconnect;
    assert.equal(got, want, `close ${code}${expired ? ' after token_expired' : ''}`);
  }
  assert.match(closeAction(1009, '', false).halt, /64 KiB/);
  assert.match(closeAction(4000, 'banned', false).halt, /banned/);
});

test('disconnects are said in words, never as a bare code', () => {
  for (const code of [1001, 1006, 1011, 1012, 4001, 4100, 4999]) {
    assert.doesNotMatch(disconnectedText(code), /\d{4}/, `close ${code}`);
  }
  assert.match(disconnectedText(1001), /restarting/);
});

test('the socket URL names the token, the rooms and where each was left', () => {
  const page = { protocol: 'https:', host: 'chat.example.com' };
  assert.equal(socketURL(page, 'a.b+c', [], new Map()), 'wss://chat.example.com/ws?token=a.b%2Bc&rooms=general');
  assert.equal(
    socketURL({ protocol: 'http:', host: 'localhost:8181' }, 't', ['general', 'jeux'], new Map([['jeux', 12]])),
    'ws://localhost:8181/ws?token=t&rooms=general,jeux&since=jeux:12',
  );
});
