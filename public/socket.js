// What the page does with its WebSocket's comings and goings, as functions of what happened: the DOM
// and the socket itself stay in app.js, so that these are tested by node --test (test/socket.test.js).

// Reconnection: a backoff doubling from BACKOFF_START_MS to BACKOFF_CAP_MS after failures in a row,
// and after a server restart (1001, 1012) a short random delay, so that its clients do not all come back
// in the same millisecond.
export const BACKOFF_START_MS = 500;
export const BACKOFF_CAP_MS = 15000;
export const SHUTDOWN_DELAY_MIN_MS = 250;
export const SHUTDOWN_DELAY_SPREAD_MS = 1500;
// STABLE_CONNECTION_MS is how long a connection must have lasted for its end to reset the backoff.
export const STABLE_CONNECTION_MS = 10000;

// restartDelay is the wait after a server restart: short, random, so that clients spread out.
export function restartDelay(random = Math.random) {
  return SHUTDOWN_DELAY_MIN_MS + random() * SHUTDOWN_DELAY_SPREAD_MS;
}

// backoffDelay is the wait before the attempt after `attempt` failures in a row: doubling from
// BACKOFF_START_MS up to BACKOFF_CAP_MS, with a random factor of 0.5 to 1.5 so that clients dropped
// together do not come back together.
export function backoffDelay(attempt, random = Math.random) {
  const base = Math.min(BACKOFF_CAP_MS, BACKOFF_START_MS * 2 ** Math.min(attempt, 20));
  return Math.min(BACKOFF_CAP_MS, base * (0.5 + random()));
}

// disconnectedText says, in words, why a connection that was open ended; the code goes to the console.
export function disconnectedText(code) {
  switch (code) {
    case 1001:
      return 'The server is restarting. Reconnecting…';
    case 1012:
      return 'This server is restarting; reconnecting to another…';
    case 4001:
      return 'Your session needs renewing…';
    case 1006:
      return 'The connection was lost. Reconnecting…';
    default:
      return code >= 4100 && code <= 4199 ? 'This page fell behind the chat. Reconnecting…' : 'Disconnected.';
  }
}

// closeAction says what to do after the connection closed with code (and reason), tokenRefused being
// set when the server had said the token expired: {halt: text} stops reconnecting and tells why;
// {renew: true} gets a fresh token first; {reconnect: 'soon'} after a server restart, {reconnect:
// 'check'} after asking the server whether the token still holds.
export function closeAction(code, reason, tokenRefused) {
  if (code === 1000) return { halt: 'The server closed the connection.' };
  if (code === 1003 || code === 1007 || code === 1009) {
    // The server refused what this page sent; sending it again would fail the same way.
    const what = code === 1003 ? 'a binary frame' : code === 1007 ? 'text that is not valid UTF-8' : 'a frame over 64 KiB';
    return { halt: `The server closed the connection because this page sent ${what}. Reload the page to reconnect.` };
  }
  const refused = tokenRefused || code === 1008 || code === 4001;
  if (code >= 4000 && code <= 4099 && !refused) {
    return { halt: `The server refused this client${reason ? ` (${reason})` : ''}.` };
  }
  if (refused) return { renew: true };
  return { reconnect: code === 1001 || code === 1012 ? 'soon' : 'check' };
}

// socketURL is the address of the WebSocket for the page at location: the token, the rooms to join
// (general when there are none) and, in since, the last message id seen in each room that has one.
export function socketURL(location, token, rooms, since) {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const names = rooms.length > 0 ? rooms : ['general'];
  // Room names are a-z 0-9 - _ only: they need no escaping, and the separators stay readable.
  let url = `${scheme}://${location.host}/ws?token=${encodeURIComponent(token)}&rooms=${names.join(',')}`;
  if (since.size > 0) {
    url += `&since=${[...since].map(([name, id]) => `${name}:${id}`).join(',')}`;
  }
  return url;
}
