// Rooms and message ids as the page keeps them, without the DOM: tested by node --test
// (test/rooms.test.js).

export const DEFAULT_ROOM = 'general';
export const ROOM_RE = /^[a-z0-9_-]{1,64}$/;
export const MAX_ROOMS = 50;

export function validRoom(name) {
  return typeof name === 'string' && ROOM_RE.test(name);
}

// messageId returns the server's numeric message id, or null when v is not one.
export function messageId(v) {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : NaN;
  return Number.isSafeInteger(n) ? n : null;
}

// savedRooms reads the room list a page stored (a JSON array; a comma-separated list is taken too) and
// the current room: valid names only, each once, MAX_ROOMS at most, general when none is left, and a
// current room that is one of them.
export function savedRooms(raw, current) {
  let names = [];
  if (raw) {
    let parsed;
    try {
      parsed = JSON.parse(raw);
    } catch {
      parsed = raw.split(',');
    }
    if (Array.isArray(parsed)) names = parsed;
  }
  names = [...new Set(names.filter((n) => typeof n === 'string').map((n) => n.trim()).filter(validRoom))];
  names = names.slice(0, MAX_ROOMS);
  if (names.length === 0) names = [DEFAULT_ROOM];
  return { names, current: names.includes(current) ? current : names[0] };
}

// gapPage sorts a page of history, fetched with before=<before>, for a resume that left out the
// messages after since and before first: missing holds those of the page in that range, and before is
// the next page's, or null when the gap is filled (the page was short, or reached since).
export function gapPage(messages, since, first, pageSize) {
  let oldest = null;
  const missing = [];
  for (const message of messages) {
    const id = messageId(message && message.id);
    if (id === null) continue;
    if (oldest === null || id < oldest) oldest = id;
    if (id > since && id < first) missing.push(message);
  }
  const done = messages.length < pageSize || oldest === null || oldest <= since + 1;
  return { missing, before: done ? null : oldest };
}
