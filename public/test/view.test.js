import { test } from 'node:test';
import assert from 'node:assert/strict';

import { typingText } from '../view.js';

test('typingText names up to three typists, then counts', () => {
  const isolate = (name) => `\u2068${name}\u2069`;
  assert.equal(typingText([]), '');
  assert.equal(typingText(['ada']), `${isolate('ada')} is typing…`);
  assert.equal(typingText(['ada', 'bob']), `${isolate('ada')} and ${isolate('bob')} are typing…`);
  assert.equal(typingText(['a', 'b', 'c']), `${isolate('a')}, ${isolate('b')} and ${isolate('c')} are typing…`);
  assert.equal(typingText(['a', 'b', 'c', 'd', 'e']), `${isolate('a')}, ${isolate('b')} and 3 others are typing…`);
});
