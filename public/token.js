// What the page reads in the tokens it holds. It never verifies one: the server does.

// REFRESH_LEAD_MS is how long before a token expires the page refreshes it.
export const REFRESH_LEAD_MS = 60000;

// tokenClaims decodes the payload of a JWT (base64url JSON), or returns null.
export function tokenClaims(token) {
  if (typeof token !== 'string') return null;
  const part = token.split('.')[1];
  if (!part) return null;
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((part.length + 3) % 4);
    const binary = atob(b64);
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === 'object' ? claims : null;
  } catch {
    return null;
  }
}

// tokenExpiry returns when the token expires, in ms since the epoch, or null when it cannot tell.
export function tokenExpiry(token) {
  const claims = tokenClaims(token);
  return claims && typeof claims.exp === 'number' ? claims.exp * 1000 : null;
}

// refreshDelay returns how long from now (ms since the epoch) to wait before refreshing a token of
// these claims: a minute before it expires, or at half its lifetime when that comes later (short-lived
// tokens); 0 when that is past; null when the claims hold no expiry.
export function refreshDelay(claims, now) {
  if (!claims || typeof claims.exp !== 'number') return null;
  const expires = claims.exp * 1000;
  const lifetime = typeof claims.iat === 'number' && claims.exp > claims.iat
    ? (claims.exp - claims.iat) * 1000
    : expires - now;
  const lead = Math.min(REFRESH_LEAD_MS, Math.max(0, lifetime / 2));
  return Math.max(0, expires - lead - now);
}
