import { test } from 'node:test';
import assert from 'node:assert/strict';

import { MAX_ROOMS, gapPage, messageId, savedRooms, validRoom } from '../rooms.js';

test('room names are the protocol\'s', () => {
  for (const name of ['general', 'a', 'jeux-2_x', 'x'.repeat(64)]) assert.ok(validRoom(name), name);
  for (const name of ['', 'Jeux', 'a b', 'x'.repeat(65), 'é', null, 3]) assert.ok(!validRoom(name), String(name));
});

test('message ids are safe integers, as numbers or digits', () => {
  assert.equal(messageId(12), 12);
  assert.equal(messageId('12'), 12);
  assert.equal(messageId('-1'), null);
  assert.equal(messageId('1e3'), null);
  assert.equal(messageId(2 ** 60), null);
  assert.equal(messageId(undefined), null);
});

test('the saved room list is cleaned up, and the current room is one of it', () => {
  assert.deepEqual(savedRooms(null, null), { names: ['general'], current: 'general' });
  assert.deepEqual(savedRooms('["jeux","Bad","jeux"," x "]', 'x'), { names: ['jeux', 'x'], current: 'x' });
  assert.deepEqual(savedRooms('jeux,foot', 'gone'), { names: ['jeux', 'foot'], current: 'jeux' });
  assert.deepEqual(savedRooms('{"not":"a list"}', null), { names: ['general'], current: 'general' });
  const many = JSON.stringify(Array.from({ length: 80 }, (_, i) => `r${i}`));
  assert.equal(savedRooms(many, null).names.length, MAX_ROOMS);
});

test('a gap is filled page by page, keeping only what the resume left out', () => {
  const page = (ids) => ids.map((id) => ({ id }));
  // Resumed from 10, the replay started at 40: 11 to 39 are missing, fetched before=40, 10 a page.
  let got = gapPage(page([30, 31, 32, 33, 34, 35, 36, 37, 38, 39]), 10, 40, 10);
  assert.deepEqual(got.missing.map((m) => m.id), [30, 31, 32, 33, 34, 35, 36, 37, 38, 39]);
  assert.equal(got.before, 30);
  got = gapPage(page([5, 6, 7, 8, 9, 10, 11, 12, 13, 14]), 10, 40, 10);
  assert.deepEqual(got.missing.map((m) => m.id), [11, 12, 13, 14]);
  assert.equal(got.before, null, 'the page reached since: the gap is filled');
  got = gapPage(page([20, 21]), 10, 40, 10);
  assert.equal(got.before, null, 'a short page is the room\'s start');
  assert.deepEqual(gapPage([{ id: 'x' }, null], 10, 40, 10), { missing: [], before: null });
});
