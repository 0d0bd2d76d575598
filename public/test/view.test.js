import { test } from 'node:test';
import assert from 'node:assert/strict';

import { memberText, typingText } from '../view.js';

test('typingText names up to three typists, then counts', () => {
  const isolate = (name) => `\u2068${name}\u2069`;
  assert.equal(typingText([]), '');
  assert.equal(typingText(['ada']), `${isolate('ada')} is typing…`);
  assert.equal(typingText(['ada', 'bob']), `${isolate('ada')} and ${isolate('bob')} are typing…`);
  assert.equal(typingText(['a', 'b', 'c']), `${isolate('a')}, ${isolate('b')} and ${isolate('c')} are typing…`);
  assert.equal(typingText(['a', 'b', 'c', 'd', 'e']), `${isolate('a')}, ${isolate('b')} and 3 others are typing…`);
});

test('memberText says what a member event did', () => {
  const ada = { id: 1, name: 'ada' };
  const bob = { id: 2, name: 'bob' };
  assert.equal(memberText({ kind: 'member_added', from: ada, user: bob }), 'ada added bob to the room.');
  assert.equal(memberText({ kind: 'member_removed', from: ada, user: bob }), 'ada removed bob from the room.');
  assert.equal(memberText({ kind: 'member_left', from: bob, user: bob }), 'bob left the room.');
  assert.equal(memberText({ kind: 'member_added', user: bob }), 'someone added bob to the room.');
  assert.equal(memberText({ text: 'hi' }), '');
});
