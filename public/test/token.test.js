import { test } from 'node:test';
import assert from 'node:assert/strict';

import { REFRESH_LEAD_MS, refreshDelay, tokenClaims, tokenExpiry } from '../token.js';

const jwt = (claims) => `h.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.s`;

test('claims are read from the payload, and nothing from a broken token', () => {
  assert.deepEqual(tokenClaims(jwt({ sub: '1', name: 'é' })), { sub: '1', name: 'é' });
  assert.equal(tokenExpiry(jwt({ exp: 100 })), 100000);
  for (const bad of [null, '', 'abc', 'a.!!!.b', jwt('just a string')]) assert.equal(tokenClaims(bad), null, String(bad));
});

test('a token is refreshed a minute before it expires, or at half its life when that is later', () => {
  const now = 1_000_000_000_000;
  const day = jwt({ iat: now / 1000, exp: now / 1000 + 86400 });
  assert.equal(refreshDelay(tokenClaims(day), now), 86400_000 - REFRESH_LEAD_MS);
  const short = tokenClaims(jwt({ iat: now / 1000, exp: now / 1000 + 60 }));
  assert.equal(refreshDelay(short, now), 30_000);
  assert.equal(refreshDelay(tokenClaims(jwt({ exp: now / 1000 - 5 })), now), 0, 'past: at once');
  assert.equal(refreshDelay(tokenClaims(jwt({ sub: '1' })), now), null, 'no expiry: none');
});
